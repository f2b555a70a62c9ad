"""The marks beside a method's name in the tables, and the footnotes that explain them."""

from __future__ import annotations

from benchmark.decision import ALPHA

#: A method joins the ranking only while the common images stay at least this share of the
#: table's images (see :mod:`benchmark.leaderboard`).
MIN_COMMON_FRACTION = 0.5
#: Marker of methods not significantly different from the leader, and its footnote.
TIED_MARK = "≈"
TIED_NOTE = (
    f"{TIED_MARK} not significantly different from the leader: the {1 - ALPHA:.0%} paired "
    "bootstrap CI of the mean per-image PSNR difference over the common images includes 0"
)
#: Marker of entries that failed (or did not evaluate) some images, and its footnote.
INCOMPLETE_MARK = "†"
INCOMPLETE_NOTE = (
    f"{INCOMPLETE_MARK} incomplete: failed some images (see 'failures'); ranked only on the "
    "images every ranked method completed; its own means over all its images are in "
    "leaderboard.json ('own_metrics')"
)
#: Marker of stochastic methods (their results depend on their seed), and its footnote.
STOCHASTIC_MARK = "~"
STOCHASTIC_NOTE = (
    f"{STOCHASTIC_MARK} stochastic: the result depends on the method's seed (part of its "
    "fingerprint); run several seeds as separate entries to see the spread across seeds"
)
UNRANKED_NOTE = (
    "unranked (–): completed no image, or too few for the ranking to keep at least "
    f"{MIN_COMMON_FRACTION:.0%} of the images in common; means over its own images only, "
    "not comparable with the ranked rows"
)
SPEED_NOTE = (
    "method img/s: images per second of the method's own inpainting calls only (no data "
    "loading, mask drawing, metrics or writing); the run's wall-clock rate is lower"
)
#: Marker of entries whose prediction equals the ground truth in every hole, and its footnote.
ORACLE_MARK = "‡"
ORACLE_NOTE = (
    f"{ORACLE_MARK} oracle: equal to the ground truth in every hole of every image, so it has "
    "seen the answers (e.g. predictions linking to an export's originals); its rank means nothing"
)
