//! Physical operators of the optimizer's logical nodes (each with a logical node of the same
//! file name) and of its physical rewrites (`probe_filter`, placed by the rule of that name).

mod group_numbers;
mod group_parts;
mod group_tops;
mod order_bits;
pub mod probe_filter;
pub mod shared_result;
pub mod top_per_group;
