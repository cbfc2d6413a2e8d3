"""Buffers take users' attributes, as PYNQ's own buffers do (its video
driver sets `pointer` and `return_to`), while what pynq_alloc reports stays
read-only, and an attribute that closes a reference cycle does not keep
device memory held for ever."""
import gc

import pytest

from pynq_alloc import allocate


def test_attributes_can_be_set_read_and_deleted(mem):
    b = allocate(16, target=mem)
    b.pointer = 0x1234
    b.return_to = "frame cache"
    assert (b.pointer, b.return_to) == (0x1234, "frame cache")
    assert vars(b) == {"pointer": 0x1234, "return_to": "frame cache"}
    del b.pointer
    assert not hasattr(b, "pointer")
    with pytest.raises(AttributeError):
        del b.pointer


def test_each_view_has_its_own_attributes(mem):
    b = allocate(16, target=mem)
    b.tag = "root"
    v = b[2:]
    assert not hasattr(v, "tag")
    v.tag = "view"
    assert b.tag == "root" and v.tag == "view"


def test_reported_attributes_stay_read_only(mem):
    b = allocate(4, target=mem)
    b.user = 1                  # a dict now exists: still read-only
    for name in ("device_address", "physical_address", "coherent",
                 "cacheable", "freed", "memory", "bo"):
        with pytest.raises(AttributeError):
            setattr(b, name, 0)
    assert "device_address" not in vars(b)


@pytest.mark.parametrize("make_cycle", [
    lambda b: setattr(b, "me", b),
    lambda b: setattr(b, "holder", {"frames": [b]}),
    lambda b: b.__dict__.__setitem__("me", b),
    lambda b: setattr(b[1:], "root", b),            # a view holds its base
    lambda b: setattr(b, "view", b[1:]),
], ids=["self", "container", "via __dict__", "view to root", "root to view"])
def test_a_cycle_through_attributes_is_collected_and_releases_memory(mem, make_cycle):
    b = allocate(1024, target=mem)
    make_cycle(b)
    del b
    gc.collect()
    assert mem.stats()["buffers"] == 0


def test_view_holding_its_base_in_a_cycle(mem):
    b = allocate(1024, target=mem)
    v = b[1:]
    v.owner = v                 # the view's own cycle keeps b alive...
    del b
    assert mem.stats()["buffers"] == 1
    del v
    gc.collect()                # ...until the collector breaks it
    assert mem.stats()["buffers"] == 0
