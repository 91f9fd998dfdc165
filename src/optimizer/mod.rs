//! Logical optimizer rules Augur adds after DataFusion's own, and the plan nodes they add;
//! each rule is kept only while `benches/tpch.py --baseline` shows it helps
//! (docs/PERFORMANCE.md).

mod anti_build_side;
pub mod decimal64;
mod dictionary_distinct;
pub mod eager_conjunctions;
mod estimates;
mod expression_rules;
mod filter_selectivity;
mod filtered_join_pushdown;
mod grouped_join;
mod join_graph;
pub mod join_order;
pub mod logical;
mod magic_set;
mod one_phase_quantiles;
pub mod physical;
mod probe_filter;
mod ranking_filter;
mod semi_join_pushdown;
mod shapes;
mod share_subplans;
#[cfg(test)]
mod test_plans;
pub mod view_equality;

pub use anti_build_side::AntiBuildSide;
pub use expression_rules::plain_of;
pub use filtered_join_pushdown::FilteredJoinPushdown;
pub use grouped_join::GroupedJoin;
pub use magic_set::MagicSet;
pub use one_phase_quantiles::OnePhaseQuantiles;
pub use probe_filter::ProbeFilter;
pub use ranking_filter::{RankingFilter, ranking_of};
pub use semi_join_pushdown::SemiJoinPushdown;
pub use share_subplans::ShareSubplans;
