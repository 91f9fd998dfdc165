//! Machine learning in SQL (DESIGN §5): the numerical core first — optimisers and models
//! with Spark MLlib's semantics — then the statements and operators built on them.

// Numerical loops index several arrays in step; iterator chains would hide the algebra.
#![allow(clippy::needless_range_loop)]

pub mod binning;
pub mod calibration;
pub mod calibration_curve;
pub mod cluster_rows;
pub mod compare;
pub mod credit_relations;
pub mod credit_tables;
pub mod drift;
pub mod encoded;
pub mod explain;
pub mod functions;
pub mod gbdt;
pub mod glm;
pub mod glm_sums;
pub mod linear;
pub mod logical;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod onnx_export;
pub mod onnx_trees;
pub mod optim;
pub mod options;
pub mod pass;
pub mod physical;
pub mod pmml_export;
pub mod preprocess;
pub mod registry;
pub mod relations;
pub mod rows;
pub mod scorecard;
pub mod shard;
pub mod shipping;
pub mod spark_import;
pub mod sql_export;
pub mod woe;
