"""The data pipeline: data sets, transforms, the demo set and readable errors for bad image files."""

from src.data.checked import (
    explain_pipeline_error,
    find_unreadable_images,
    iterate_checked,
    reported_image_errors,
)
from src.data.datasets import SPLITS, create_dataset, data_folder, dataset_class_names, dataset_num_classes
from src.data.demo_dataset import DEMO_CLASSES, generate_demo_split, write_demo_imagefolder
from src.data.transforms import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transforms,
    preprocess_image,
    read_rgb,
    train_transforms,
)

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DEMO_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SPLITS",
    "create_dataset",
    "data_folder",
    "dataset_class_names",
    "dataset_num_classes",
    "eval_transforms",
    "explain_pipeline_error",
    "find_unreadable_images",
    "generate_demo_split",
    "iterate_checked",
    "preprocess_image",
    "read_rgb",
    "reported_image_errors",
    "train_transforms",
    "write_demo_imagefolder",
]
