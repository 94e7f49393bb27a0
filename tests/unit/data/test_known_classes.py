"""The class names of the public label sets shipped with the project."""

from src.data.known_classes import cifar100_classes, imagenet1k_classes


def test_shipped_label_lists_are_complete_and_in_label_order():
    imagenet, cifar = imagenet1k_classes(), cifar100_classes()
    assert len(imagenet) == len(set(imagenet)) == 1000
    assert (imagenet[0], imagenet[1], imagenet[999]) == ("tench", "goldfish", "toilet tissue")
    assert len(cifar) == len(set(cifar)) == 100
    assert list(cifar) == sorted(cifar)  # CIFAR-100's fine labels are numbered alphabetically
    assert not any(name.startswith("#") for name in (*imagenet, *cifar))
