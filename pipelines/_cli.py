"""What every ``python -m pipelines.<name>`` shares: bad input ends the run with exit code 2 and one line on stderr,
``<prog>: error: <what is wrong>`` (no traceback, no usage dump), and numeric flags are parsed with their valid range
named in the message (``argument --size: expected an integer in [16, 512], got 5``). Every entry point takes
``--config FILE.yaml`` (``add_config_argument``, ``parse_args``) and writes the settings it ran with in the same form
(``write_settings``), so a run can be replayed; flags that take several values take one comma list."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

# What checking arguments and input files raises: a wrong value or type, a missing, misplaced or unreadable path.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


def error_line(prog: str, error: BaseException | str) -> str:
    """``<prog>: error: <error>`` on one line (line breaks in the message become spaces)."""
    return f"{prog}: error: {' '.join(str(error).split())}"


def report(prog: str, error: BaseException | str) -> int:
    """Prints the error line on stderr; returns the exit code for bad input, 2."""
    print(error_line(prog, error), file=sys.stderr)
    return 2


def command(prog: str, argv: list[str] | None) -> str:
    """The command line a run was given, shell-quoted: ``prog`` and ``argv`` (default: this process's arguments)."""
    import shlex

    return shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)])


def fail(prog: str, error: BaseException | str) -> NoReturn:
    """Reports the error and exits with code 2."""
    raise SystemExit(report(prog, error))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are the one-line report (``fail``)."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to a flag's help unless the help already states its default or X is None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or "default:" in text or "(default" in text:
            return text
        return super()._get_help_string(action)


def boolean(text: str) -> bool:
    """An argparse ``type``: true/false, yes/no, on/off or 1/0."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class BooleanFlag(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag`` (argparse.BooleanOptionalAction), and ``--flag true|false`` as well."""

    def __init__(self, option_strings, dest, default=None, **kwargs):
        super().__init__(option_strings, dest, default=default, **kwargs)
        self.nargs = "?"
        self.metavar = "BOOL"

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                raise argparse.ArgumentError(self, f"takes no value, got {values!r}")
            setattr(namespace, self.dest, False)
            return
        try:
            setattr(namespace, self.dest, True if values is None else boolean(values))
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None


# -- settings files: --config FILE.yaml and the resolved settings a run writes ------------------------------------
CONFIG_FILE = "config.yaml"  # the resolved settings each run writes beside its results


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """--config FILE.yaml: settings whose keys are the flag names (dashes or underscores); command-line flags
    override them. ``parse_args`` reads it."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="settings from a YAML file (keys: the flag names, e.g. num-images or num_images; a run's own "
        f"{CONFIG_FILE} replays it); flags given on the command line override the file",
    )


def _long_name(action: argparse.Action) -> str:
    """The name a settings file uses for an argument: its first long option without dashes, or its dest."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0][2:] if longs else action.dest.replace("_", "-")


def _settable(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every name a settings file may use -> its argument: the dest and each long option, dashes or underscores."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if action.dest in (argparse.SUPPRESS, "help", "config") or isinstance(action, argparse._VersionAction):
            continue
        for name in [action.dest] + [o.lstrip("-") for o in action.option_strings if o.startswith("--")]:
            names[name.replace("-", "_")] = action
    return names


def _given(action: argparse.Action, argv: list[str]) -> bool:
    """Whether the command line gives this option (then it overrides the settings file)."""
    for token in argv:
        for option in action.option_strings:
            if token == option or token.startswith(option + "=") or (len(option) == 2 and token.startswith(option)):
                return True
    return False


def _convert(action: argparse.Action, value: object) -> object:
    """A settings-file value as the command line would give it (types, ranges and choices checked)."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool) and not (value is None and action.default is None):  # None: "automatic"
            raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
        return value
    if value is None:
        return None
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if many:
        return [_one(action, v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(value, list):  # a multi-value flag: the comma list the command line takes
        value = ",".join(str(v) for v in value)
    return _one(action, value)


def _one(action: argparse.Action, value: object) -> object:
    if isinstance(value, (dict, list)):
        raise argparse.ArgumentTypeError(f"expected a single value, got {value!r}")
    converted = action.type(str(value)) if callable(action.type) else value if isinstance(value, bool) else str(value)
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise argparse.ArgumentTypeError(f"invalid choice {converted!r} (choose from {choices})")
    return converted


def read_config(path: str) -> dict:
    """A settings file's mapping (``yaml.safe_load``: plain data only, no code).

    Raises:
        FileNotFoundError, ValueError: a missing file, or not a YAML mapping.
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        values = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"--config {path}: not a YAML file ({' '.join(str(error).split())})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of flag names to values, got {type(values).__name__}")
    return values


def apply_config(parser: argparse.ArgumentParser, values: dict, argv: list[str], path: str = "FILE") -> None:
    """Makes a settings file's values the parser's defaults, except where ``argv`` gives the flag.

    Raises:
        ValueError: an unknown key (all named) or a value the flag does not take.
    """
    settable = _settable(parser)
    unknown = [str(k) for k in values if str(k).replace("-", "_") not in settable]
    if unknown:
        known = ", ".join(sorted({_long_name(a) for a in settable.values()}))
        raise ValueError(f"--config {path}: unknown key(s) {', '.join(unknown)}; expected some of {known}")
    for key, value in values.items():
        action = settable[str(key).replace("-", "_")]
        if _given(action, argv):
            continue
        try:
            action.default = _convert(action, value)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
            raise ValueError(f"--config {path}: {key}: {error}") from None
        action.required = False
        if not action.option_strings:  # a positional the file gives: the command line may leave it out
            action.nargs = "?" if action.nargs is None else "*" if action.nargs == "+" else action.nargs


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` after reading ``--config FILE.yaml`` (``apply_config``); a bad file is the
    one-line error (``fail``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    path = pre.parse_known_args(argv)[0].config
    if path is not None:
        try:
            apply_config(parser, read_config(path), argv, path)
        except (ValueError, OSError) as error:
            fail(parser.prog, error)
    return parser.parse_args(argv)


def resolved_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The run's settings, one key per argument (its long flag name), in a form ``--config`` reads back."""
    settings = {}
    for action in parser._actions:
        if action.dest in (argparse.SUPPRESS, "help", "config") or not hasattr(args, action.dest):
            continue
        settings[_long_name(action)] = _plain(getattr(args, action.dest))
    return settings


def _plain(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # a path


def write_settings(parser: argparse.ArgumentParser, args: argparse.Namespace, path: str | os.PathLike) -> Path:
    """Writes the resolved settings as YAML (atomically) to ``path``, e.g. ``<out>/config.yaml``; returns it."""
    import yaml

    from inv_kernels.io import atomic_write_bytes

    text = yaml.safe_dump(resolved_settings(parser, args), sort_keys=False, default_flow_style=False)
    return atomic_write_bytes(text.encode(), Path(path))


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    return f" <= {high}" if high is not None else ""


def integer(low: int | None = None, high: int | None = None):
    """An argparse ``type``: an int in [low, high] (an end left None is open)."""

    def parse(text: str) -> int:
        expected = f"expected an integer{_bounds(low, high)}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{expected}, got {value}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """An argparse ``type``: a finite float in [low, high], or (low, high] with ``low_open``."""

    def parse(text: str) -> float:
        expected = f"expected a finite number{_bounds(low, high, low_open)}"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


def device(text: str) -> str:
    """An argparse ``type``: ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>`` (whether the GPU exists is checked later)."""
    import torch

    try:
        kind = torch.device(text).type if text != "auto" else "auto"
    except RuntimeError:
        kind = None
    if kind not in ("auto", "cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:<i>, got {text!r}")
    return text


def triple(text: str) -> tuple[float, float, float]:
    """An argparse ``type``: three finite numbers, comma-separated (an RGB mean or standard deviation)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected 3 comma-separated finite numbers (R,G,B), got {text!r}")
    return values


def add_model_arguments(parser: argparse.ArgumentParser, *, features: bool = True, per_model: bool = False) -> None:
    """The flags that say which model to read and what of it to measure, shared by every entry point that reads a
    model: --arch, and with ``features`` --layer, --mean, --std, --precision. ``per_model``: --arch and --layer also
    take NAME=VALUE,... (one value per model of --models)."""
    each = " (NAME=VALUE,... for one per model)" if per_model else ""
    parser.add_argument(
        "--arch",
        default=None,
        help="architecture of the checkpoint: a torchvision name (resnet50, vit_b_16, ...), resnet50w3 or "
        f"timm:NAME; needed where the file records none, and overrides what it records{each}",
    )
    if not features:
        return
    parser.add_argument(
        "--layer",
        default=None,
        help="measure this module's output (a name of model.named_modules(), e.g. layer3 or blocks.6), pooled: "
        f"global average of (N,C,H,W) maps, class token (else mean token) of (N,T,D) tokens; default: the model's "
        f"pooled output{each}",
    )
    parser.add_argument(
        "--mean", type=triple, default=None, help="R,G,B normalisation mean (default: a timm model's, else ImageNet's)"
    )
    parser.add_argument("--std", type=triple, default=None, help="R,G,B normalisation std (with --mean)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="forward pass precision: fp32, bf16 autocast, or auto (bf16 autocast on a GPU and on CPUs with bfloat16 "
        "instructions, else fp32); default: %(default)s (None: bf16 autocast on a GPU, fp32 on the CPU)",
    )
