import pytest

from mmp_jax.models.variants import PAPER_VARIANTS, Variant, model_from_variant, parse_variant


def test_parse_and_format_round_trip():
    assert parse_variant('A9B10C18F8') == Variant(9, 10, 18, 8)
    for name in PAPER_VARIANTS:
        assert parse_variant(name).name == name


def test_model_fields_follow_the_variant():
    model = model_from_variant('A3B4C16F5', do_skip=False)
    assert (model.n_blocks_a, model.n_blocks_b, model.n_features, model.do_skip) == (3, 4, 16, False)


@pytest.mark.parametrize('name', ['A9B10C18', 'a9b10c18f8', 'A9B10C18F8x', 'big', 'A0B1C16F8'])
def test_bad_names_get_a_clear_error(name):
    with pytest.raises(ValueError, match=r'A9B10C18F8|must be >= 1'):
        parse_variant(name)
