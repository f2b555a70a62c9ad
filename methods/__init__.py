"""Built-in inpainting methods, declared lazily in ``METHODS``.

Each entry names the class that implements it (``"module:Class"``); its module is imported the
first time the method is used, so ``python -m benchmark list`` imports none of them (nor torch).
The class registers itself with ``@METHODS.register("<name>")`` when its module is imported,
and that must match the declaration here (a test checks every entry).

Add a method by writing ``methods/<name>.py`` with a ``@METHODS.register("<name>")`` class and
adding a line for it below.
"""

from benchmark.method import METHODS

#: Method name -> the class that implements it.
BUILTIN_METHODS = {
    "biharmonic": "methods.biharmonic:Biharmonic",
    "diffusers": "methods.diffusers_inpaint:DiffusersInpaint",
    "diffusion": "methods.diffusion:Diffusion",
    "onnx": "methods.exported:OnnxMethod",
    "torchscript": "methods.exported:TorchScriptMethod",
    "mean": "methods.floors:MeanFill",
    "nearest": "methods.floors:NearestFill",
    "telea": "methods.opencv:Telea",
    "ns": "methods.opencv:NavierStokes",
    "pconv": "methods.pconv:PConvMethod",
    "predictions": "methods.predictions:PredictionsMethod",
    "repaint": "methods.repaint:RePaint",
    "tv": "methods.tv:TotalVariation",
    "unet": "methods.unet:UNetMethod",
    "unet-fill": "methods.unet:UNetFillMethod",
    "shiftmap": "methods.xphoto:ShiftMap",
    "fsr": "methods.xphoto:FrequencySelectiveBest",
    "fsr-fast": "methods.xphoto:FrequencySelectiveFast",
}

for _name, _target in BUILTIN_METHODS.items():
    if _name not in METHODS._lazy and _name not in METHODS._entries:  # imported twice by pytest
        METHODS.add_lazy(_name, _target)
