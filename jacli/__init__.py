"""jacli: gradients and Jacobians of math written as text.

    import jacli
    prog = jacli.compile("x^2*y + sin(z)")
    prog.grad({"x": 1, "y": 2, "z": 3}).gradient     # array([ 4., 1., -0.98999...])
"""

from .api import Program, Result, Trace, compile
from .errors import JacliError

__version__ = "0.1.0"
__all__ = ["compile", "Program", "Result", "Trace", "JacliError", "__version__"]
