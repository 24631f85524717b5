//! The intel-ipsec-mb provider (being written).
