"""On-disk stores (HDF5) and the datasets that read training windows from them."""
