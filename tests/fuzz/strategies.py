"""What the fuzz tests share: how many examples, JSON values, mutations, the property's check.

The fast lane runs ``DEFAULT_EXAMPLES`` examples per test, derandomised (the same examples every
run) and without shrinking; ``DRIVEENV_FUZZ_EXAMPLES=2000 pytest tests/fuzz`` runs a longer,
random search that shrinks what it finds.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from common.errors import DriveEnvError

DEFAULT_EXAMPLES = 50
EXAMPLES = int(os.environ.get("DRIVEENV_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
LONG_RUN = "DRIVEENV_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    # the fast lane reports the first failing example as found; a long run shrinks it
    phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if LONG_RUN else [])],
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Numbers stay small: a file asking for a huge model or grid is a memory question, not a
# parsing one, and would exhaust the test machine rather than find a bug.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["", "\x00", "../../x", "/", "images", "NaN", "1e400", "true", '"'])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into ``doc``'s containers, the root included."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw, base: Any, max_mutations: int = 3) -> Any:
    """``base`` (a JSON document) with 1 to ``max_mutations`` values replaced or removed."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return draw(JSON_VALUES)
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return doc


def check_one_line(error: BaseException) -> None:
    """The property's failure half: a project error with a one-line message."""
    assert isinstance(error, DriveEnvError), f"{type(error).__name__}: {error}"
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, repr(text)
