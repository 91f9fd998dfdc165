//! Physical operators of our statements (each with a logical node of the same file name).

pub mod train_model;
