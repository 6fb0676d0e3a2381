"""Seed lists on the command line: ``0-7``, ``1,5,7`` or a mix (``0-4,10``)."""

from __future__ import annotations

from common.errors import DriveEnvError


class SeedsError(DriveEnvError):
    """A seed list that is not integers >= 0, or that repeats a seed."""


def parse_seed_list(text: str, flag: str = "--seeds") -> list[int]:
    """The seeds ``text`` names, in its order; ``SeedsError`` naming ``flag`` otherwise."""
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            first, _, last = part.partition("-")
            seeds.extend(range(int(first), int(last) + 1) if last else [int(first)])
    except ValueError:
        raise SeedsError(f"{flag} {text!r}: expected integers >= 0 like 0-7 or 1,5,7") from None
    if not seeds:
        raise SeedsError(f"{flag} {text!r}: names no seed")
    if len(set(seeds)) != len(seeds):
        raise SeedsError(f"{flag} {text!r}: a seed repeats")
    return seeds
