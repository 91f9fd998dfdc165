//! Physical operators of the optimizer's logical nodes (each with a logical node of the same file name).

mod group_tops;
pub mod shared_result;
pub mod top_per_group;
