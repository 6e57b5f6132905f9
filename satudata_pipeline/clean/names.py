"""Person-name normalisation.

The rules (titles, Muhammad variants, old-spelling replacements) are data in `name_rules.yaml`
next to this file; its header documents the order of the steps. Example:

    "H. Moh. Djoko Soesilo, S.Pd"  ->  nama "MUHAMMAD JOKO SUSILO"
    "Siti Aminah binti Abdullah"   ->  nama "SITI AMINAH", nama_orang_tua "ABDULLAH"

Decisions worth knowing:
- a leading `H`/`HJ` followed by another token is Haji and removed; elsewhere `H` is an initial;
- a leading `M` followed by another token is Muhammad; elsewhere `M` is an initial;
- dotted degrees (`S.Pd`, `M.M`) are removed only after some other text (never at the start, so
  "M. Hasan" is not read as the degree M.H);
- if removing titles would leave nothing ("Haji", "Ibu"), the name is kept as it is;
- `BIN`/`BINTI`/`BINTE` splits only when it is not the first token and something follows it
  ("Binti Khoiriyah" is a given name);
- old spelling: DJ->J, TJ->C, OE->U, SJ->SY, word-initial NJ->NY; no J->Y, no CH->KH.

Normalisation is idempotent: normalize_name(nama) gives nama back.
Everything runs once per distinct value, with the rule regexes compiled once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

from satudata_pipeline.clean.values import as_text, ascii_upper, on_uniques

__all__ = ["NAME_COLUMNS", "load_name_rules", "normalize_name"]

RULES_PATH = Path(__file__).resolve().parent / "name_rules.yaml"
NAME_COLUMNS = ["nama", "nama_orang_tua", "first_name", "last_name", "nama_sorted"]
_MAX_PASSES = 6


def _alternation(words) -> str:
    words = sorted({w.strip().upper() for w in words if str(w).strip()}, key=len, reverse=True)
    return "|".join(re.escape(w) for w in words)


def _tokens(words, what: str) -> frozenset[str]:
    """Rule words that are matched as whole tokens of the name."""
    tokens = frozenset(w.strip().upper() for w in words if str(w).strip())
    if any(len(t.split()) != 1 for t in tokens):
        raise ValueError(f"name_rules.yaml: every entry of {what} must be a single word")
    return tokens


@lru_cache(maxsize=1)
def load_name_rules() -> dict:
    """The parsed YAML plus the derived token sets and regexes (cached)."""
    with open(RULES_PATH, encoding="utf-8") as fh:
        rules = yaml.safe_load(fh)
    degrees = []
    for d in sorted(rules["dotted_degrees"], key=len, reverse=True):
        parts = [re.escape(p) for p in d.upper().split(".")]
        degrees.append(r"\.\s*".join(parts) + r"\.?")
    rules["_degree_re"] = r"(?:(?<=,)|(?<=\s))(?:" + "|".join(degrees) + r")(?![A-Z])"
    rules["_titles"] = _tokens(rules["titles"], "titles")
    rules["_leading"] = _tokens(rules["leading_titles"], "leading_titles")
    rules["_muhammad"] = _tokens(rules["muhammad_variants"], "muhammad_variants")
    bins = _alternation(rules["bin_tokens"])
    rules["_bin_re"] = rf"^(\S+(?: \S+)*?) (?:{bins}) (\S.*)$"
    rules["_spelling"] = [(str(a), str(b)) for a, b in rules["spelling"]]
    # One alternation; each rule's match text maps to its replacement (rules must be literal
    # apart from a leading word boundary `\b`).
    rules["_spelling_map"] = {a.replace("\\b", ""): b for a, b in rules["_spelling"]}
    rules["_spelling_re"] = re.compile("|".join(a for a, _ in rules["_spelling"]))
    return rules


@lru_cache(maxsize=1)
def _patterns() -> dict[str, re.Pattern]:
    """The rule regexes of `load_name_rules`, compiled."""
    rules = load_name_rules()
    return {
        "degree": re.compile(rules["_degree_re"]),
        "bin": re.compile(rules["_bin_re"]),
        "spelling": rules["_spelling_re"],
    }


# Bytes other than A-Z -> space (the text is ASCII after `ascii_upper`).
_LETTERS_ONLY = bytes(c if ord("A") <= c <= ord("Z") else ord(" ") for c in range(256))


def _squeeze(text: str) -> str:
    """Whitespace runs -> one space, trimmed."""
    return " ".join(text.split())


def _spelling(text: str) -> str:
    """The spelling rules in one regex pass, repeated until nothing changes."""
    pattern, table = _patterns()["spelling"], load_name_rules()["_spelling_map"]
    if pattern.search(text) is None:  # the common case: nothing to replace
        return text
    for _ in range(_MAX_PASSES):
        new = pattern.sub(lambda m: table[m.group(0)], text)
        if new == text:
            break
        text = new
    return text


def _part_step(text: str) -> str:
    """One pass of spelling, title removal and Muhammad normalisation on a name part (upper-case
    letters in words separated by single spaces)."""
    rules = load_name_rules()
    tokens = _spelling(text).split(" ")
    while len(tokens) > 1 and tokens[0] in rules["_leading"]:  # H / HJ followed by a token
        del tokens[0]
    tokens = [t for t in tokens if t not in rules["_titles"]] or tokens  # only titles: kept
    tokens = ["MUHAMMAD" if t in rules["_muhammad"] else t for t in tokens]
    if len(tokens) > 1 and tokens[0] == "M":
        tokens[0] = "MUHAMMAD"
    return " ".join(tokens)


def _normalize_part(text: str) -> str:
    """Repeat `_part_step` until stable."""
    for _ in range(_MAX_PASSES):
        new = _part_step(text)
        if new == text:
            break
        text = new
    return text


def _normalize_one(text: str) -> tuple[str | None, str | None]:
    """(nama, nama_orang_tua) of one name already folded to upper-case ASCII."""
    p = _patterns()
    text = p["degree"].sub(" ", text)
    text = text.encode("ascii").translate(_LETTERS_ONLY).decode("ascii")
    text = _spelling(_squeeze(text))
    if not text:
        return None, None
    split = p["bin"].search(text)
    nama, parent = (split.group(1), split.group(2)) if split else (text, None)
    nama = _normalize_part(nama)
    parent = _normalize_part(parent) if parent is not None else None
    return nama or None, parent or None


def _normalize_uniques(u: pd.Series) -> pd.DataFrame:
    rows: list[tuple[str | None, ...]] = []
    # blanks are judged again after folding: NÀ folds to NA, a null spelling (cleaning stays idempotent)
    for text in as_text(ascii_upper(as_text(u))).to_numpy(dtype=object, na_value=None):
        nama, parent = _normalize_one(text) if text is not None else (None, None)
        if nama is None:
            rows.append((None, parent, None, None, None))
        else:
            tokens = nama.split(" ")  # nama is squeezed: single spaces, no padding
            rows.append((nama, parent, tokens[0], tokens[-1], " ".join(sorted(tokens))))
    return pd.DataFrame(rows, columns=NAME_COLUMNS, index=range(len(rows)), dtype=object)


def normalize_name(raw: pd.Series) -> pd.DataFrame:
    """Raw names -> DataFrame on raw's index with NAME_COLUMNS (object dtype, None when empty):

    nama            normalised name without titles and without the bin/binti part
    nama_orang_tua  the part after BIN/BINTI/BINTE, normalised the same way, else None
    first_name      first token of nama
    last_name       last token of nama (equals first_name for one-token names)
    nama_sorted     the tokens of nama sorted alphabetically (for swapped name order)
    """
    return on_uniques(pd.Series(raw), _normalize_uniques)  # None for null names
