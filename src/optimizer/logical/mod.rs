//! Logical nodes our optimizer rules put into plans (each with a physical operator of the same file name).

pub mod shared_result;
pub mod top_per_group;
