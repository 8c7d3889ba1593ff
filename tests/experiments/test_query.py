"""The runs query language: parsing, helpful errors, and compiled filters on the real database."""
from __future__ import annotations

import pytest

from experiments.query import BoolOp, Comparison, Not, QueryError, parse, tokenize
from experiments.selectors import runs_filtered
from tests.experiments.factories import log, make_run


def test_precedence_is_not_then_and_then_or():
    tree = parse("a.x = 1 or not b.y = 2 and c.z = 3")
    assert isinstance(tree, BoolOp) and tree.op == "or"
    right = tree.items[1]
    assert isinstance(right, BoolOp) and right.op == "and"
    assert isinstance(right.items[0], Not)


def test_values_are_typed():
    c = parse('params.lr <= 1e-3')
    assert isinstance(c, Comparison) and c.value == 0.001 and c.value_kind == "number"
    assert parse("tag = w4a4").value_kind == "string"
    assert parse('name ~ "res net"').value == "res net"
    assert parse("params.pretrained = TRUE").value is True
    assert parse("created > 2024-05-01").value_kind == "date"
    assert parse("params.bits = 4bit").value == "4bit"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("params.lr <", "expected a value after '<' at column 12"),
        ("params.lr < 0.1 and", "expected a field name (e.g. params.lr, metrics.acc, tag) at column 20"),
        ("(params.lr < 0.1", "expected ')' to close the '(' at column 1 at column 17"),
        ("params.lr < 0.1)", "unbalanced ')' at column 16"),
        ('name = "abc', "unterminated string starting with \" at column 8"),
        ("params.lr 0.1", "expected an operator (= != < <= > >= ~) after 'params.lr', found '0.1' at column 11"),
        ("params.lr < 0.1 metrics.acc > 1", "expected 'and', 'or' or the end of the query, found 'metrics.acc' at column 17"),
        ("", "the query is empty at column 1"),
        ("lr < 0.1", "unknown field 'lr'"),
        ("status = runing", "unknown status 'runing'"),
        ("metrics.acc > high", "metrics are numbers"),
        ("params.x < and", "expected a value after '<', found the keyword 'and' at column 12"),
        ("name = $", "unexpected character '$' at column 8"),
    ],
)
def test_errors_say_what_and_where(query, message):
    with pytest.raises(QueryError) as err:
        from experiments.query import compile_query

        compile_query(query) if query else parse(query)
    assert message in str(err.value)


def test_tokenizer_never_evaluates_code():
    tokens = tokenize('name = "__import__(\'os\').system(\'x\')"')
    assert tokens[2].kind == "STRING"


@pytest.fixture
def runs(db, user, other_user):
    a = make_run(user, name="resnet-a", config={"optim": {"lr": 0.001}, "arch": "resnet20", "pretrained": True},
                 tags=["w4a4"], kind="quantize")
    b = make_run(user, name="resnet-b", config={"optim": {"lr": 0.1}, "arch": "resnet20", "pretrained": False},
                 tags=["w8a8"], kind="prune")
    c = make_run(user, name="mlp", config={"optim": {"lr": "auto"}, "arch": "mlp"}, tags=["w4a4", "baseline"])
    make_run(other_user, name="theirs", config={"optim": {"lr": 0.001}}, tags=["w4a4"])
    log(a, "acc", [0.5, 0.95, 0.93])
    log(b, "acc", [0.5, 0.91])
    log(c, "acc", [0.2])
    log(a, "cost/macs", [4e7])
    log(b, "cost/macs", [2e7])
    return {"a": a, "b": b, "c": c}


def names(user, q):
    return sorted(r.name for r in runs_filtered(user, q))


CASES = [
        ('params.optim.lr < 0.01 and metrics.acc > 0.9 and tag = "w4a4"', ["resnet-a"]),
        ("params.optim.lr < 0.01 or tag = baseline", ["mlp", "resnet-a"]),
        ("not tag = w4a4", ["resnet-b"]),
        ("tag != w4a4", ["resnet-b"]),
        ('params.optim.lr = "auto"', ["mlp"]),
        ("params.optim.lr > 0", ["resnet-a", "resnet-b"]),
        ("(kind = prune or kind = quantize) and metrics.acc.best >= 0.95", ["resnet-a"]),
        ("metrics.acc.max > 0.94 and metrics.acc < 0.94", ["resnet-a"]),
        ("metrics.cost/macs <= 2e7", ["resnet-b"]),
        ("name ~ RESNET", ["resnet-a", "resnet-b"]),
        ("name !~ resnet", ["mlp"]),
        ("params.arch ~ res and params.pretrained = true", ["resnet-a"]),
        ("params.pretrained = false", ["resnet-b"]),
        ("params.missing = null", ["mlp", "resnet-a", "resnet-b"]),
        ("params.pretrained != null", ["resnet-a", "resnet-b"]),
        ("tag ~ base", ["mlp"]),
        ("created > 2000-01-01 and status = running", ["mlp", "resnet-a", "resnet-b"]),
        ("created < 2000-01-01", []),
        ("project = proj and metrics.acc.count = 3", ["resnet-a"]),
]


def test_compiled_filters_select_the_right_runs(user, runs):
    # One database setup for the whole table of cases (each case is a read): keeps the suite fast.
    wrong = {query: (names(user, query), expected) for query, expected in CASES if names(user, query) != expected}
    assert not wrong, wrong
