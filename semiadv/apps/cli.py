"""What every binary shares: flag errors and user errors as one line with exit code 2,
`--help` listing the binary's own flags, and `--verbose`.

  def main(argv): ...
  def run():
      cli.run(main, "semiadv-train", key_flag_modules=(train_flags, common_flags))

A mistake in the flags (a bad value, a missing required flag) or a `semiadv.errors.UserError`
raised before any work ends the command with `<binary>: error: <message>` on stderr and exit
code 2 (the convention of argparse and of most Unix tools for usage errors), never a
traceback. Anything else is a bug and keeps its traceback.

Every absl binary imports this module before anything that imports TensorFlow, so importing it
also quiets TensorFlow's start-up: its CUDA probing and C++ INFO lines would bury the binaries'
own output. They stay hidden unless `SEMIADV_VERBOSE=1` is set or `--verbose` is on the command
line; this has to run before TensorFlow is imported, the only time it can work. For the same
reason this is where oneDNN's CPU kernels are preferred (`quiet.prefer_onednn`). The Beam
binary does not import it: its driver never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging

from semiadv.apps import quiet
from semiadv.errors import UserError, UserValueError

quiet.prefer_onednn(os.environ)
quiet.quiet_tensorflow(verbose=quiet.verbose_requested(sys.argv[1:], os.environ))

EXIT_USER_ERROR = 2

VERBOSE = flags.DEFINE_boolean(
    "verbose", False,
    "Show TensorFlow's start-up messages (CUDA probing, C++ INFO lines) and its Python "
    "warnings, hidden by default; SEMIADV_VERBOSE=1 does the same.")


def fail(binary: str, message) -> NoReturn:
    """Reports a user error in one line and exits with code 2."""
    text = " ".join(str(message).split())  # One line, whatever the message's layout.
    print(f"{binary}: error: {text}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def _flag_name(argument: str) -> str | None:
    """`name` of `--name=value`, `--name` or `--noname`; None for a non-flag argument."""
    if not argument.startswith("-") or argument in ("-", "--"):
        return None
    return argument.lstrip("-").split("=", 1)[0]


def _negated(name: str) -> str | None:
    """`name` of `--noname` (which negates boolean flag `name`), else None."""
    return name[2:] if name.startswith("no") else None


def _is_defined(name: str) -> bool:
    if name in flags.FLAGS:
        return True
    negated = _negated(name)
    return (negated is not None and negated in flags.FLAGS
            and isinstance(flags.FLAGS[negated], flags.BooleanFlag))


def drop_unknown_flagfile_flags(argv: Sequence[str]) -> list[str]:
    """Expands --flagfile arguments, keeping only the flags this binary defines.

    Lets a binary that defines a few flags read a recipe's flagfile, which also sets the
    training flags, without defining those: flags given on the command line stay strict.
    """
    kept = [argv[0]]
    for argument in argv[1:]:
        if _flag_name(argument) != "flagfile":
            kept.append(argument)
            continue
        for expanded in flags.FLAGS.read_flags_from_files([argument], force_gnu=False):
            name = _flag_name(expanded)
            if name is None or _is_defined(name):
                kept.append(expanded)
    return kept


def arguments_setting(argv: Sequence[str], names) -> list[str]:
    """The arguments of `argv` that are --flagfile or set a flag in `names` (--noname too).

    For printing another binary's command from this one's arguments: only the flags that
    binary defines, so the printed command runs (the other's flagfiles are lenient). A
    non-boolean flag given as `--name value` keeps its value.
    """
    names = set(names) | {"flagfile"}
    kept = []
    arguments = iter(argv)
    for argument in arguments:
        name = _flag_name(argument)
        if name is None or not (name in names or _negated(name) in names):
            continue
        kept.append(argument)
        if ("=" not in argument and name in flags.FLAGS
                and not isinstance(flags.FLAGS[name], flags.BooleanFlag)):
            value = next(arguments, None)  # `--name value`: its value.
            if value is not None:
                kept.append(value)
    return kept


def _parser(binary: str, lenient_flagfiles: bool) -> Callable[[list[str]], list[str]]:
    def parse(argv):
        try:
            if lenient_flagfiles:
                argv = drop_unknown_flagfile_flags(argv)
            return flags.FLAGS(argv)
        except flags.Error as error:
            message = str(error)
            # A multi-flag validator's message is prefixed with every value it looked at:
            # ours name the flag at fault themselves.
            prefix = re.match(r"flags [^:]*: (?=--)", message)
            fail(binary, f"{message[prefix.end() if prefix else 0:]} (see {binary} --help)")
    return parse


def _declare_key_flags(modules) -> None:
    """Makes the flags of `modules` key flags of the main module, so `--help` lists them.

    absl's --help shows the key flags of the module named by sys.argv[0]: for a console
    script that is the generated launcher, which defines none.
    """
    for module in modules:
        for flag in flags.FLAGS.get_key_flags_for_module(module):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def _library_info_filter(record) -> bool:
    """Drops the INFO lines TensorFlow and Keras log through absl (e.g. "Sharding callback
    duration" at every checkpoint); keeps ours and every warning."""
    import logging as std_logging

    path = record.pathname.replace("\\", "/")
    return record.levelno >= std_logging.WARNING or not (
        "/tensorflow/" in path or "/keras/" in path or "/tf_keras/" in path)


def run(main: Callable[[list[str]], int | None], binary: str, key_flag_modules=(),
        lenient_flagfiles: bool = False) -> None:
    """`absl.app.run(main)`, with user errors reported in one line and exit code 2.

    Args:
      main: the binary's main(argv).
      binary: its command name, e.g. "semiadv-train", used in messages.
      key_flag_modules: modules whose flags `--help` lists (the binary's own module and the
        shared flag modules it uses).
      lenient_flagfiles: ignore flags from --flagfile that this binary does not define.
    """
    _declare_key_flags((*key_flag_modules, sys.modules[__name__]))

    def guarded(argv):
        if VERBOSE.value:
            import tensorflow as tf
            tf.get_logger().setLevel("INFO")
        else:
            # Keras and TensorFlow warn through Python's warnings module too.
            import warnings
            warnings.filterwarnings("ignore", module="keras")
            warnings.filterwarnings("ignore", module="tensorflow")
            logging.get_absl_logger().addFilter(_library_info_filter)
        logging.set_verbosity(logging.INFO)
        try:
            return main(argv)
        except UserError as error:
            fail(binary, error)

    app.run(guarded, flags_parser=_parser(binary, lenient_flagfiles))


class building_config:  # noqa: N801  (used as a context manager: `with cli.building_config()`)
    """Turns a ValueError raised while flags become a config into a `UserError`.

    Config dataclasses only validate: any ValueError they raise is about a flag's value.
    """

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and issubclass(kind, ValueError) \
                and not isinstance(error, UserError):
            raise UserValueError(str(error)) from error
        return False
