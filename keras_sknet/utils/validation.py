"""Argument checks shared by layers and models.

Every error names the argument, what was received and what is accepted.
"""

import numbers


def check_positive_int(name, value):
    """Returns `value` as an int if it is an integer >= 1, else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_positive_number(name, value):
    """Returns `value` as a float if it is a real number > 0, else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
    return float(value)


def check_kernel_sizes(kernel_sizes):
    """Returns the kernel sizes of an SK convolution's paths as a tuple of odd ints >= 1."""
    if isinstance(kernel_sizes, numbers.Integral) and not isinstance(kernel_sizes, bool):
        kernel_sizes = (kernel_sizes,)
    if not isinstance(kernel_sizes, (list, tuple)) or len(kernel_sizes) < 1:
        raise ValueError(
            "`kernel_sizes` must be a non-empty list of odd positive integers, one per "
            f"path (M >= 1). Received: kernel_sizes={kernel_sizes!r}"
        )
    for k in kernel_sizes:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 or k % 2 == 0:
            raise ValueError(
                "Every kernel size must be an odd positive integer (1, 3, 5, 7, ...). "
                f"Received: kernel_sizes={tuple(kernel_sizes)!r}"
            )
    return tuple(int(k) for k in kernel_sizes)


def per_path(name, value, num_paths):
    """Broadcasts an int to one value per path, or checks a per-path sequence."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_paths:
            raise ValueError(
                f"`{name}` must be an int or a list with one entry per path "
                f"({num_paths}). Received: {name}={value!r}"
            )
        return tuple(check_positive_int(name, v) for v in value)
    return (check_positive_int(name, value),) * num_paths
