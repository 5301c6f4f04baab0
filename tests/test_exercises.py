"""hopfield_lab.exercises: the check cell says right, not implemented, or what is wrong."""
import pytest
import torch

from hopfield_lab.exercises import CORRECT, WRONG, assert_close, check


def _test(f):
    x = torch.arange(6.0).reshape(2, 3)
    assert_close(f(x), 2 * x, "2x for a (2, 3) input")


@pytest.mark.parametrize("fn,expected", [
    (lambda x: 2 * x, f"{CORRECT} double: correct."),
    (lambda x: x + x + 1e-9, f"{CORRECT} double: correct."),
])
def test_right_answers_pass(capsys, fn, expected):
    assert check("double", _test, fn) is None          # the cell shows the printed line only
    assert capsys.readouterr().out.strip() == expected


def _stub(x):
    raise NotImplementedError


@pytest.mark.parametrize("fn,says", [
    (_stub, "not implemented yet"),
    (lambda x: 3 * x, "5 of 6 entries differ"),
    (lambda x: (2 * x).T, "expected shape (2, 3), got (3, 2)"),
    (lambda x: (2 * x).tolist(), "expected a torch.Tensor, got list"),
    (lambda x: x / 0 * 0, "NaN or inf"),
    (lambda x: x.nosuch(), "raised AttributeError"),
    ("not a function", "expected a function"),
])
def test_wrong_answers_say_what_is_wrong(capsys, fn, says):
    check("double", _test, fn)
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{WRONG} double:") and says in out and "Traceback" not in out


def test_name_mistake_names_only_a_listed_wrong_answer():
    from hopfield_lab.exercises import name_mistake

    want = torch.arange(4.0)
    name_mistake(want.clone(), want, [(-want, "sign")], "x")             # right: silent
    name_mistake(want + 5, want, [(-want, "sign")], "x")                 # wrong, not listed: silent
    name_mistake(torch.zeros(3), want, [(-want, "sign")], "x")           # wrong shape: left to assert_close
    with pytest.raises(AssertionError, match="x: sign"):
        name_mistake(-want, want, [(want + 1, "off by one"), (-want, "sign")], "x")
