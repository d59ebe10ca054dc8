"""The task page's filter as it travels in the URL, and where the server may bind quietly."""

from __future__ import annotations

from vlmhyperbench.explorer.filters import checked, parse_query
from vlmhyperbench.explorer.serve import bind_warning, is_loopback

MODELS = ["alpha", "alpha@temp=1", "beta"]


def test_a_filter_survives_its_own_query_string() -> None:
    query = (
        "model=alpha%40temp%3D1&model=beta&g.subset=blur&metric=cer&below=0.25&above=0.1"
        "&of=beta&errors=1&right=alpha&wrong=beta&cut=0.8&q=%D0%B4%D0%B0%D1%82%D0%B0+x"
        "&sort=score%3Abeta&order=desc&page=3"
    )
    f = parse_query(query)
    assert f.models == ("alpha@temp=1", "beta") and f.groups == (("subset", "blur"),)
    assert (f.metric, f.below, f.above, f.of, f.errors) == ("cer", 0.25, 0.1, "beta", True)
    assert (f.right, f.wrong, f.cut, f.q) == ("alpha", "beta", 0.8, "дата x")
    assert (f.sort_model, f.descending, f.page) == ("beta", True, 3)
    assert parse_query(f.query()) == f
    assert "page" not in f.query(page=1) and "page=4" in f.query(page=4)


def test_defaults_leave_the_query_empty_and_sorts_have_natural_orders() -> None:
    assert parse_query("").query() == ""
    assert not parse_query("sort=id").descending
    assert parse_query("sort=disagreement").descending
    assert not parse_query("sort=disagreement&order=asc").descending


def test_what_cannot_be_read_is_named_not_applied() -> None:
    f = parse_query("below=abc&above=inf&page=0&cut=")
    assert f.below is None and f.above is None and f.page == 1 and f.cut == 0.5
    assert len(f.problems) == 3
    f = checked(
        parse_query("model=gamma&model=beta&metric=bleu&right=zeta&g.colour=red&sort=score:x"),
        models=MODELS,
        metrics=["exact_match", "cer"],
        group_columns=["subset"],
    )
    assert f.models == ("beta",) and f.metric == "" and f.right == "" and f.groups == ()
    assert f.sort == "id"
    assert len(f.problems) == 5


def test_binding_anywhere_but_loopback_is_warned() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback(host) and bind_warning(host, 8765) is None
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        warning = bind_warning(host, 8765)
        assert warning is not None and host in warning and "anyone" in warning
