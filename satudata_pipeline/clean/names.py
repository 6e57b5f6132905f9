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
Everything runs on the distinct values with vectorised string methods.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
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


@lru_cache(maxsize=1)
def load_name_rules() -> dict:
    """The parsed YAML plus compiled regex sources (cached)."""
    with open(RULES_PATH, encoding="utf-8") as fh:
        rules = yaml.safe_load(fh)
    degrees = []
    for d in sorted(rules["dotted_degrees"], key=len, reverse=True):
        parts = [re.escape(p) for p in d.upper().split(".")]
        degrees.append(r"\.\s*".join(parts) + r"\.?")
    rules["_degree_re"] = r"(?:(?<=,)|(?<=\s))(?:" + "|".join(degrees) + r")(?![A-Z])"
    rules["_title_re"] = r"(?<!\S)(?:" + _alternation(rules["titles"]) + r")(?!\S)"
    rules["_leading_re"] = r"^(?:(?:" + _alternation(rules["leading_titles"]) + r") )+(?=\S)"
    rules["_muhammad_re"] = r"(?<!\S)(?:" + _alternation(rules["muhammad_variants"]) + r")(?!\S)"
    bins = _alternation(rules["bin_tokens"])
    rules["_bin_re"] = rf"^(\S+(?: \S+)*?) (?:{bins}) (\S.*)$"
    rules["_spelling"] = [(str(a), str(b)) for a, b in rules["spelling"]]
    # One alternation; each rule's match text maps to its replacement (rules must be literal
    # apart from a leading word boundary `\b`).
    rules["_spelling_map"] = {a.replace("\\b", ""): b for a, b in rules["_spelling"]}
    rules["_spelling_re"] = re.compile("|".join(a for a, _ in rules["_spelling"]))
    return rules


def _squeeze(t: pd.Series) -> pd.Series:
    return t.str.replace(r"\s+", " ", regex=True).str.strip()


def _spelling(t: pd.Series, rules: dict) -> pd.Series:
    """Apply the spelling rules in one regex pass per round; repeat only on changed values."""
    pattern, table = rules["_spelling_re"], rules["_spelling_map"]

    def repl(m: re.Match) -> str:
        return table[m.group(0)]

    todo = t.notna()
    for _ in range(_MAX_PASSES):
        if not todo.any():
            break
        cur = t[todo]
        new = cur.str.replace(pattern, repl, regex=True)
        changed = (new != cur).fillna(False)
        t = t.copy()
        t[todo] = new
        todo = pd.Series(False, index=t.index)
        todo[changed[changed].index] = True
    return t


def _part_step(t: pd.Series, rules: dict) -> pd.Series:
    """One pass of spelling, title removal and Muhammad normalisation on a name part."""
    t = _spelling(t, rules)
    t = t.str.replace(rules["_leading_re"], "", regex=True)
    stripped = _squeeze(t.str.replace(rules["_title_re"], " ", regex=True))
    t = stripped.mask(stripped == "", t)  # a name made only of titles is kept
    t = t.str.replace(rules["_muhammad_re"], "MUHAMMAD", regex=True)
    t = t.str.replace(r"^M (?=\S)", "MUHAMMAD ", regex=True)
    return _squeeze(t)


def _normalize_part(t: pd.Series, rules: dict) -> pd.Series:
    """Repeat `_part_step` until stable (only on the values that still change)."""
    t = t.copy()
    todo = t.notna()
    for _ in range(_MAX_PASSES):
        if not todo.any():
            break
        cur = t[todo]
        new = _part_step(cur, rules)
        changed = (new != cur).fillna(False)
        t[todo] = new
        todo = pd.Series(False, index=t.index)
        todo[changed[changed].index] = True
    return t


def _normalize_uniques(u: pd.Series) -> pd.DataFrame:
    rules = load_name_rules()
    t = ascii_upper(as_text(u))
    t = t.str.replace(rules["_degree_re"], " ", regex=True)
    t = _squeeze(t.str.replace(r"[^A-Z]+", " ", regex=True))
    t = _spelling(t, rules)
    t = t.mask(t == "")

    parts = t.str.extract(rules["_bin_re"])
    has_bin = parts[0].notna()
    nama = t.where(~has_bin, parts[0])
    parent = parts[1].astype("string")

    nama = _normalize_part(nama, rules)
    parent = _normalize_part(parent, rules)
    nama = nama.mask(nama == "")
    parent = parent.mask(parent == "")

    tokens = nama.str.split(" ")
    first = nama.str.extract(r"^(\S+)", expand=False)
    last = nama.str.extract(r"(\S+)$", expand=False)
    sorted_ = tokens.map(lambda ts: " ".join(sorted(ts)), na_action="ignore")

    def obj(s: pd.Series) -> np.ndarray:
        return pd.Series(s).astype(object).where(pd.Series(s).notna(), None).to_numpy()

    return pd.DataFrame(
        {
            "nama": obj(nama),
            "nama_orang_tua": obj(parent),
            "first_name": obj(first),
            "last_name": obj(last),
            "nama_sorted": obj(sorted_),
        }
    )


def normalize_name(raw: pd.Series) -> pd.DataFrame:
    """Raw names -> DataFrame on raw's index with NAME_COLUMNS (object dtype, None when empty):

    nama            normalised name without titles and without the bin/binti part
    nama_orang_tua  the part after BIN/BINTI/BINTE, normalised the same way, else None
    first_name      first token of nama
    last_name       last token of nama (equals first_name for one-token names)
    nama_sorted     the tokens of nama sorted alphabetically (for swapped name order)
    """
    raw = pd.Series(raw)
    out = on_uniques(raw, _normalize_uniques)
    out = out.astype(object).where(out.notna(), None)
    out.index = raw.index
    return out
