"""One normaliser for names people type (profile names): however a keyboard, a phone or a paste encoded
them, the same name is one name.

- `name_form`: how a name is stored and shown: compatibility-composed (NFKC: "Zoë" typed with a combining
  diaeresis is the precomposed "Zoë", full-width "Ａｎｎａ" is "Anna"), a typographic apostrophe (’, as
  phones type it) as a plain one, runs of white space as one space.
- `name_key`: how names are compared (uniqueness, lookup, matching in goals): the form, case-folded
  ("STRASSE" and "straße" are one key).
"""

from __future__ import annotations

import unicodedata


def name_form(name: str) -> str:
    """The stored, shown form of a name (NFKC, plain apostrophes, single spaces, trimmed)."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("\u2019", "'").split())


def name_key(name: str) -> str:
    """The form names are compared by: name_form, case-folded (and composed again after folding)."""
    return unicodedata.normalize("NFKC", name_form(name).casefold())
