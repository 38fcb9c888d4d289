"""The fast byte path (orjson) gives exactly what the exact path gives, or is not taken.

Random documents in random layouts, with numbers spelled every way a writer may spell
them, lone surrogates and control characters: parsing the bytes and writing them back
must give the same values, the same layout and the same bytes as the exact path.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wasched.common import jsontext
from wasched.common.document import DocumentError, parse_document, render_document
from wasched.common.document import typed as document_typed
from wasched.common.jsontext import Layout, RawNumber

SPELLINGS = ["0", "-0", "7", "-12", "2.5", "1.50", "-0.0", "1E5", "1e21", "1e400", "0.1"]
SPELLINGS += ["123456789012345678901234567890", "18446744073709551615", "1e-7"]

LAYOUTS = [
    Layout(),
    Layout(end=""),
    Layout(indent=None, item_separator=",", key_separator=":", end=""),
    Layout(indent=None, item_separator=", ", key_separator=": ", end="\n"),
    Layout(indent="    "),
    Layout(indent="\t", newline="\r\n", end="\r\n"),
    Layout(bom=True),
]

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["Zoë ✨ 🎂", "\x00\x1f\x7f\u2028", 'quote " back \\ slash', "\ud83d"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(SPELLINGS).map(RawNumber),
)
scalars = st.one_of(st.none(), st.booleans(), texts, numbers)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(st.dictionaries(st.sampled_from(["id", "to", "n", "x"]), values), max_size=5)


def exact(body: bytes) -> tuple[Any, Layout]:
    text = body.decode("utf-8")
    return jsontext.loads(text.removeprefix("\ufeff")), jsontext.detect(text)


@given(messages, st.dictionaries(st.sampled_from(["v", "ui"]), values), st.sampled_from(LAYOUTS))
def test_fast_path_reads_and_writes_what_the_exact_path_does(
    msgs: list[dict[str, Any]], extra: dict[str, Any], layout: Layout
) -> None:
    body = jsontext.dumps({"messages": msgs, **extra}, layout).encode()
    data, found, typed = jsontext.loads_bytes(body)
    assert typed or not document_typed(want := exact(body)[0]), want
    want, want_layout = exact(body)
    assert found == want_layout
    assert jsontext.dumps(data, found) == jsontext.dumps(want, want_layout)  # every spelling
    assert jsontext.dumps_bytes(data, found) == body
    assert render_document(parse_document(body)) == body


def test_a_document_longer_than_the_layout_head_keeps_its_layout() -> None:
    long_text = "x" * 100_000
    for layout in LAYOUTS:
        body = jsontext.dumps({"messages": [{"message": long_text, "id": "a"}]}, layout).encode()
        assert jsontext.loads_bytes(body)[1] == exact(body)[1]
        assert render_document(parse_document(body)) == body


@pytest.mark.parametrize(("body", "got"), [(b"null", "null"), (b"7", "int"), (b'"x"', "a string")])
def test_a_document_that_is_a_single_value_is_no_schedule(body: bytes, got: str) -> None:
    with pytest.raises(DocumentError, match=f"got {got}"):
        parse_document(body)
