"""The vocabulary both sides share: states, kinds and the JSON shapes nixseal
emits. Imports nothing of nixseal, so any module may use it.

- nixseal.models.install: what an install reports of each entry. Imported
  at every boot, so it imports nothing at run time at all.
- nixseal.models.repo: the admin side's kinds and the JSON of `check` and
  `audit`.

This file stays empty: importing one of them must not import the other.
"""
