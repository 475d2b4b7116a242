//! The `roamlb` command line.

fn main() {}
