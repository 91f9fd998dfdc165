//! Logical optimizer rules Augur adds after DataFusion's own; each is kept only while
//! `benches/tpch.py --baseline` shows it helps (docs/PERFORMANCE.md).

mod semi_join_pushdown;

pub use semi_join_pushdown::SemiJoinPushdown;
