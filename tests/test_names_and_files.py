"""Issue 23, names and files: spec values typed by the constructor (a path stays text), unique
and length-limited file-name slugs, tampered results files as one line, short error lines."""

from __future__ import annotations

import json
import string
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.cli import ERROR_LINE_CHARS, error_line, main
from benchmark.commands.report_data import Run
from benchmark.commands.report_samples import saved_samples
from benchmark.datasets import DATASETS
from benchmark.datasets.base import dataset_spec
from benchmark.errors import DataError, UsageError
from benchmark.masking import MASKS, build_mask
from benchmark.method import METHODS
from benchmark.names import legacy_slug, slugify
from benchmark.parameters import _signature, kinds
from benchmark.records import RecordStore
from benchmark.registry import Registry, Spec, parse_spec
from benchmark.results.export_layout import read_manifest
from benchmark.results.schema import Manifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")
REGISTRIES = {"method": METHODS, "mask": MASKS, "dataset": DATASETS}
SLUG_CHARACTERS = set(string.ascii_letters + string.digits + "._-")


def cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def mask_folder(path: Path, value: int = 255) -> Path:
    """A folder of one mask file: a centred square hole (``value`` = its colour)."""
    pixels = np.zeros((32, 32), np.uint8)
    pixels[8:24, 8:24] = value
    path.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path / "m.png"), pixels)
    return path


# -- spec values: the constructor's annotations decide, never the text's look -----------------


@pytest.mark.parametrize("text", ["007", "2024_01", "1e3", "true", "none", "-0", "12.50"])
def test_a_path_stays_text(text: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    mask_folder(tmp_path / text)
    generator = build_mask(f"folder:path={text}")
    assert Path(generator.path) == (tmp_path / text).resolve()
    assert dict(MASKS.normalize(f"folder:path={text}").params)["path"] == text
    assert dict(dataset_spec(f"folder:path={text}").params)["path"] == text
    assert METHODS.build(f"predictions:path={text}").root == (tmp_path / text).resolve()


def text_parameters() -> list[tuple[str, str, str]]:
    """(kind, entry, parameter) of every text parameter of every registered entry."""
    found = []
    for kind, registry in REGISTRIES.items():
        for name in registry.names():
            for parameter in _signature(registry.get(name)).parameters.values():
                accepted = kinds(parameter)
                if accepted is not None and str in accepted:
                    found.append((kind, name, parameter.name))
    return found


@pytest.mark.parametrize("kind, name, parameter", text_parameters())
def test_every_text_parameter_of_every_registry_keeps_its_text(kind, name, parameter) -> None:
    registry = REGISTRIES[kind]
    for text in ("007", "2024_01", "1e3", "true", "null"):
        typed = registry.typed(Spec(name, ((parameter, text),)))
        assert typed.kwargs[parameter] == text


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_characters=",=", blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=30,
    ).filter(lambda t: t.strip() == t)
)
def test_spec_text_round_trips_and_text_values_are_kept(text: str) -> None:
    spec = parse_spec(f"folder:path={text}")
    assert spec.kwargs == {"path": text}
    assert parse_spec(str(spec)) == spec
    assert MASKS.typed(spec).kwargs["path"] == text  # str-annotated: never converted


@pytest.mark.parametrize(
    "spec, message",
    [
        ("telea:radius=5.0", "expected an integer, got '5.0'"),
        ("telea:radius=2_0", "expected an integer, got '2_0'"),
        ("telea:radius=true", "expected an integer"),
        ("diffusion:tol=abc", "expected a number, got 'abc'"),
        ("folder:path=x,invert=1", "expected true or false, got '1'"),
    ],
)
def test_a_value_that_does_not_fit_its_annotation_is_one_line(spec: str, message: str) -> None:
    registry = MASKS if spec.startswith("folder") else METHODS
    with pytest.raises(UsageError, match=message):
        registry.build(spec)


def test_values_are_converted_by_annotation_default_or_not_at_all() -> None:
    registry: Registry[object] = Registry("thing")

    def thing(a: int = 0, b: float | None = None, c=3, d=None, e: bool = False) -> dict:
        return {"a": a, "b": b, "c": c, "d": d, "e": e}

    registry.add("thing", thing)
    built = registry.build("thing:a=07,b=none,c=8,d=09,e=TRUE")
    assert built == {"a": 7, "b": None, "c": 8, "d": "09", "e": True}


# -- slugs: unique, length-limited --------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400), st.text(max_size=400))
def test_slugs_are_unique_safe_and_short(a: str, b: str) -> None:
    for text in (a, b):
        slug = slugify(text)
        assert 1 <= len(slug) <= 59 and set(slug) <= SLUG_CHARACTERS
        assert slug not in (".", "..") and not slug.startswith(".")
        assert slugify(text) == slug  # deterministic
    if a != b:
        assert slugify(a) != slugify(b)


def test_plain_names_keep_their_slug_and_colliding_specs_do_not_collide() -> None:
    assert [slugify(n) for n in ("telea", "lines", "unet-fill")] == ["telea", "lines", "unet-fill"]
    assert legacy_slug("folder:a/b") == legacy_slug("folder:a_b")  # the old rule collided
    assert slugify("folder:a/b") != slugify("folder:a_b")


def test_export_of_two_specs_the_old_rule_merged_keeps_two_families(tmp_path, capsys) -> None:
    mask_folder(tmp_path / "m" / "a" / "b", 255)
    mask_folder(tmp_path / "m" / "a_b", 255)
    (tmp_path / "m" / "a_b" / "m.png").write_bytes(
        cv2.imencode(".png", np.pad(np.full((8, 8), 255, np.uint8), 12))[1].tobytes()
    )
    out = tmp_path / "ex"
    masks = f"folder:{tmp_path}/m/a/b,folder:{tmp_path}/m/a_b"
    assert cli(capsys, "export", "--masks", masks, "--limit", "2", "--out", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    folders = {spec: entry["folder"] for spec, entry in manifest["masks"].items()}
    assert len(set(folders.values())) == 2
    holes = {
        spec: cv2.imread(str(out / folder / "000000_mask.png"), cv2.IMREAD_GRAYSCALE).sum()
        for spec, folder in folders.items()
    }
    assert len(set(holes.values())) == 2  # each family's own masks, not one over the other


def test_a_309_character_path_exports(tmp_path, capsys) -> None:
    deep = tmp_path / ("a" * 150) / ("b" * 150)
    mask_folder(deep)
    spec = f"folder:{deep}"
    assert len(spec) > 309
    out = tmp_path / "ex"
    code, err = cli(capsys, "export", "--masks", spec, "--limit", "1", "--out", str(out))
    assert code == 0, err
    assert all(len(p.name) <= 255 for p in out.rglob("*"))


def test_saved_images_of_an_older_run_are_still_found(tmp_path) -> None:
    out = tmp_path / "run"
    assert main(
        ["run", "--methods", "telea:radius=4", "--masks", "lines:max_lines=2", "--limit", "2",
         "--workers", "1", "--quiet", "--save-images", "--out", str(out)]
    ) == 0  # fmt: skip
    images = out / "images"
    for spec, parent in (("lines:max_lines=2", images), ("telea:radius=4", None)):
        base = parent if parent is not None else images / legacy_slug("lines:max_lines=2")
        (base / slugify(spec)).rename(base / legacy_slug(spec))  # as older versions named them
    cells = saved_samples(Run(out), "lines:max_lines=2", ["telea:radius=4"], [0, 1])
    assert cells is not None and cells[1]["telea:radius=4"] is not None


def test_predictions_laid_out_by_the_old_rule_say_what_to_rename(tmp_path) -> None:
    old = tmp_path / "preds" / legacy_slug("square:max_size=0.25")
    old.mkdir(parents=True)
    cv2.imwrite(str(old / "000000.png"), np.zeros((32, 32, 3), np.uint8))
    method = METHODS.build(f"predictions:{tmp_path / 'preds'}")
    problems = method._folder_differences(1, (32, 32), {"square:max_size=0.25": "x"})
    assert f"rename it to {slugify('square:max_size=0.25')}/" in problems[0]


# -- tampered results files: one line, exit 1 ---------------------------------------------------


@pytest.fixture
def export_and_predictions(tmp_path, capsys) -> tuple[Path, Path]:
    out, preds = tmp_path / "ex", tmp_path / "preds"
    assert cli(capsys, "export", "--masks", "square", "--limit", "2", "--out", str(out))[0] == 0
    for index in range(2):
        masked = out / "square" / f"{index:06d}_masked.png"
        (preds / "square").mkdir(parents=True, exist_ok=True)
        (preds / "square" / f"{index:06d}.png").write_bytes(masked.read_bytes())
    return out, preds


@pytest.mark.parametrize(
    "field, value",
    [
        (("dataset", "image_size"), 5),
        (("dataset", "image_size"), True),
        (("dataset",), "x"),
        (("masks", "square"), []),
        (("masks", "square", "folder"), 3),
        (("mask_ratio",), [2, 3]),
        (("files", 0, "index"), -1),
    ],
)
def test_a_tampered_export_manifest_is_one_line_exit_1(
    export_and_predictions, capsys, field, value
) -> None:
    out, preds = export_and_predictions
    manifest = json.loads((out / "manifest.json").read_text())
    target = manifest
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    (out / "manifest.json").write_text(json.dumps(manifest))
    for args in (
        ["run", "--methods", f"predictions:path={preds},export={out}", "--masks", "square",
         "--limit", "2", "--workers", "1", "--quiet", "--out", str(out.parent / "run")],
        ["export", "--masks", "square", "--limit", "2", "--out", str(out)],
    ):  # fmt: skip
        code, err = cli(capsys, *args)
        assert code == 1 and "manifest" in one_error_line(err)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"kind": st.just("inpaint-bench export")},
        optional={
            "layout": st.sampled_from(["native", "lama", "x"]) | JSON_VALUES,
            "masks": JSON_VALUES,
            "files": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={k: JSON_VALUES for k in ("mask", "index", "masked", "mask_file")},
                ),
                max_size=2,
            )
            | JSON_VALUES,
            "dataset": JSON_VALUES,
            "seed": JSON_VALUES,
            "mask_ratio": JSON_VALUES,
        },
    )
)
def test_reading_any_manifest_is_a_dict_or_one_data_error(tmp_path_factory, data) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    (folder / "manifest.json").write_text(json.dumps(data))
    try:
        manifest = read_manifest(folder)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    if manifest is None:  # not JSON this reader takes as an export's (e.g. Infinity)
        return
    typed = msgspec.convert(manifest, Manifest)
    assert all(isinstance(row.masked, str) for row in typed.files)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(
    ["method", "mask", "index", "status", "psnr", "ssim", "seconds", "mask_ratio", "fingerprint"]
), JSON_VALUES, max_size=9), min_size=1, max_size=3))  # fmt: skip
def test_reading_any_records_gives_valid_records_or_one_data_error(tmp_path_factory, rows) -> None:
    path = tmp_path_factory.mktemp("records") / "records.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    try:
        store = RecordStore(path)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    for record in store:  # what a run may reuse: values of the right type and range
        if record["status"] == "ok" and "psnr" in record:
            assert isinstance(record["psnr"], (int, float)) and 0 <= record["psnr"] <= 100


def test_tampered_records_are_recomputed_not_a_traceback(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["run", "--methods", "mean", "--masks", "square", "--limit", "3", "--workers", "1",
            "--quiet", "--out", str(out)]  # fmt: skip
    assert cli(capsys, *args)[0] == 0
    lines = (out / "records.jsonl").read_text().splitlines()
    for value in ("x", [], {}, True, None, 1e308):
        record = json.loads(lines[0])
        record["psnr"] = value
        (out / "records.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
        code, err = cli(capsys, *args)
        assert code == 0 and "1 records with invalid values are ignored and recomputed" in err
        reread = RecordStore(out / "records.jsonl").get(
            ("mean", record["fingerprint"], "square", 0)
        )
        assert reread is not None and isinstance(reread["psnr"], float) and reread["psnr"] < 100


# -- error lines -------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--methods", "--masks", "--dataset"])
def test_a_100000_character_name_gives_a_short_error_line(option, capsys) -> None:
    args = {"--methods": "mean", "--masks": "square", "--dataset": "skimage-patches"}
    args[option] = "x" * 100_000
    code, err = cli(capsys, "run", *[w for pair in args.items() for w in pair], "--limit", "1")
    line = one_error_line(err)
    assert code == 2 and len(line) <= ERROR_LINE_CHARS + len("error: ")
    assert line.endswith(err.strip()[-40:])  # the end (what to do) is kept


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000), st.integers(min_value=40, max_value=2000))
def test_error_lines_are_one_line_and_cut_in_the_middle(text: str, limit: int) -> None:
    line = error_line(text, limit)
    flat = " ".join(text.split())
    assert "\n" not in line and len(line) <= limit
    if len(flat) <= limit:
        assert line == flat
    else:
        assert line.startswith(flat[: limit // 3]) and line.endswith(flat[-(limit // 5) :])
