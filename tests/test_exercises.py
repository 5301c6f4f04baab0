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


def test_name_mistake_names_the_matching_variant_only_for_wrong_answers():
    from hopfield_lab.exercises import name_mistake

    want = torch.tensor([1.0, 2.0, 3.0])
    variants = [(-want, "the sign is flipped."), (2 * want, "the factor 2 is extra.")]
    name_mistake(want.clone(), want, variants, "v")                  # right: silent
    name_mistake(torch.ones(2), want, variants, "v")                 # other shape: left to assert_close
    name_mistake(torch.tensor([1.0, 2.0, float("nan")]), want, variants, "v")
    name_mistake(torch.tensor([9.0, 9.0, 9.0]), want, variants, "v")  # matches no variant
    with pytest.raises(AssertionError, match=r"^v: the factor 2 is extra\.$"):
        name_mistake(2 * want, want, variants, "v")
    with pytest.raises(AssertionError, match="sign is flipped"):
        name_mistake((-want).double(), want, variants, "v")          # dtype does not matter


def test_graded_prints_the_verdict_and_raises_only_on_a_wrong_answer(capsys):
    from hopfield_lab.exercises import ExerciseFailed, graded

    def check_double(fn):
        return check("double", _test, fn)

    assert graded(check_double, lambda x: 2 * x) is None
    assert capsys.readouterr().out.strip() == f"{CORRECT} double: correct."
    for fn, says in [(lambda x: 3 * x, "5 of 6 entries differ"), (_stub, "not implemented yet"),
                     ("not a function", "expected a function")]:
        with pytest.raises(ExerciseFailed, match=says) as err:
            graded(check_double, fn)
        line = capsys.readouterr().out.strip()
        assert str(err.value) == line and line.startswith(f"{WRONG} double:")   # the feedback names it
        assert isinstance(err.value, AssertionError)                            # what nbgrader deducts on
    check_double(lambda x: 3 * x)                          # outside graded(): the book's print-only mode
    assert capsys.readouterr().out.startswith(WRONG)
    with pytest.raises(RuntimeError, match="gave no verdict"):
        graded(lambda fn: None, lambda x: 2 * x)
