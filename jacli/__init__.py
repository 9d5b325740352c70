"""jacli: gradients and Jacobians of math written as text.

    import jacli
    prog = jacli.compile("x^2*y + sin(z)")
    prog.grad({"x": 1, "y": 2, "z": 3}).gradient     # array([ 4., 1., -0.98999...])
"""

__version__ = "0.1.0"
__all__ = ["compile", "Program", "Result", "Trace", "JacliError", "__version__"]


def __getattr__(name: str):
    # Imported on first use, so `jacli` on the command line starts no faster than it must.
    if name in ("compile", "Program", "Result", "Trace"):
        from . import api
        return getattr(api, name)
    if name == "JacliError":
        from .errors import JacliError
        return JacliError
    raise AttributeError(f"module 'jacli' has no attribute {name!r}")
