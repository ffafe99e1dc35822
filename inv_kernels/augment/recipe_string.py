"""The compact command-line form of a custom recipe, e.g.
"random_resized_crop:scale=0.2-1,horizontal_flip:p=0.5,color_jitter:brightness=0.4,p=0.8", read into the list of
dicts that ``get_recipe`` takes (settings are checked there)."""

from __future__ import annotations

from fractions import Fraction


def _number(text: str) -> float | int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(Fraction(text))  # "0.2", "3/4"


def _value(key: str, text: str) -> object:
    try:
        if key in ("scale", "ratio", "sigma"):
            lo, sep, hi = text.partition("-")
            if not sep:
                raise ValueError
            return [_number(lo), _number(hi)]
        if key == "kernel":
            return text if text == "from_sigma" else int(text)
        return _number(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot read setting {key}={text!r} (ranges are written min-max, e.g. scale=0.2-1)") from None


def parse_recipe_string(text: str) -> list[dict]:
    """Parses "random_resized_crop:scale=0.2-1,horizontal_flip:p=0.5,color_jitter:brightness=0.4,p=0.8".

    Entries are separated by ","; an entry "name" or "name:key=value[:key=value...]" starts an op, and an entry
    "key=value" adds a setting to the op before it. Ranges are "min-max"; numbers may be fractions ("3/4").
    """
    entries: list[dict] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        head, *settings = token.split(":")
        if "=" in head:  # a setting continuing the previous op
            if not entries:
                raise ValueError(f"recipe string {text!r}: setting {head!r} comes before any op")
            settings = [head, *settings]
        else:
            entries.append({"op": head.strip()})
        for item in settings:
            key, eq, val = item.partition("=")
            if not eq:
                raise ValueError(f"recipe string {text!r}: expected key=value, got {item!r}")
            entries[-1][key.strip()] = _value(key.strip(), val.strip())
    if not entries:
        raise ValueError("recipe string is empty")
    return entries
