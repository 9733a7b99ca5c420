//! crashcheck (being written)
