"""A metric family's MGE metrics get its colour and place in the plots however the family says
which encodings it applies to (registry fact ``kinds=`` or ``encodings=``)."""

from __future__ import annotations

import pytest

from snntopo.analysis.features import _mge_families
from snntopo.metrics import FAMILIES


@pytest.fixture
def registered():
    added = []

    def register(name, **facts):
        FAMILIES.register(name, "snntopo.metrics.local:compute", **facts)
        added.append(name)

    yield register
    for name in added:  # leave the registry as it was
        FAMILIES.unregister(name)


def test_family_registered_with_encodings_is_an_mge_family(registered):
    registered("by_encodings", encodings=("mge",), metrics=("enc_metric",))
    registered("by_kinds", kinds=("multipartite",), metrics=("kind_metric",))
    registered("bge_only", encodings=("rolled",), metrics=("bge_metric",))
    families = _mge_families()
    assert families["enc_metric"] == "by_encodings"
    assert families["kind_metric"] == "by_kinds"
    assert "bge_metric" not in families  # no multipartite encoding: not an MGE family
