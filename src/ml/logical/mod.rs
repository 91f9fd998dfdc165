//! Logical plan nodes of our statements (each with a physical operator of the same file name).

pub mod train_model;
