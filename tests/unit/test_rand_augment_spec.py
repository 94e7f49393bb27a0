"""The RandAugment spec syntax of the ``auto_augment`` key (timm's ``rand-m9-n2-mstd0.5-inc1``)."""

import pytest

from src.errors import UserError
from src.rand_augment_spec import RandAugmentSpec, parse_rand_augment


@pytest.mark.parametrize(("spec", "expected"), [
    ("rand-m9-n2", RandAugmentSpec(num_ops=2, magnitude=9.0)),
    ("rand-m9-mstd0.5-inc1", RandAugmentSpec(num_ops=2, magnitude=9.0, magnitude_std=0.5)),
    ("rand-n3-m10", RandAugmentSpec(num_ops=3, magnitude=10.0)),
    ("rand-m0", RandAugmentSpec(num_ops=2, magnitude=0.0)),
    ("rand-m7.5", RandAugmentSpec(num_ops=2, magnitude=7.5)),
    ("autoaug", None),
    (None, None),
])
def test_parse_rand_augment_reads_timm_specs(spec, expected):
    assert parse_rand_augment(spec) == expected


@pytest.mark.parametrize(("spec", "fragment"), [
    ("rand-m11", "must be in [0, 10]"),
    ("rand-n2", "needs a magnitude"),
    ("rand", "needs a magnitude"),
    ("rand-m9-n0", "whole number >= 1"),
    ("rand-m9-n1.5", "whole number >= 1"),
    ("rand-m9-inc0", "inc0 cannot be honoured"),
    ("rand-m9-w0", "unknown option 'w0'"),
    ("rand-m-1", "unknown option 'm'"),
    ("randaug-m9", "RandAugment spec like"),
])
def test_parse_rand_augment_refuses_bad_specs(spec, fragment):
    with pytest.raises(UserError) as caught:
        parse_rand_augment(spec)
    assert fragment in str(caught.value)
