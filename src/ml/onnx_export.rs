//! `EXPORT MODEL m TO 'm.onnx' OPTIONS (format = 'onnx')`: a logistic or linear regression on
//! numeric inputs as an ONNX graph in double precision (standard opset-13 `MatMul`, `Add` and,
//! for classifiers, `Sigmoid`; ai.onnx.ml's `LinearClassifier` keeps float32 coefficients);
//! boosted trees in onnx_trees.rs. Input `features`: double [N, d], the model's numeric
//! inputs in order, and for each category column a string input of its name [N, 1], mapped to
//! its coefficients by an ai.onnx.ml `LabelEncoder` (double values; unknown strings → 0, as
//! Augur scores an unseen category); output `probability` (or `prediction`): double [N, 1].
//! The protobuf is written here: six message types.

use datafusion::error::{DataFusionError, Result};

use super::model::Model;
use super::options::ModelType;
use super::preprocess::Encoder;

/// Protobuf wire format: varints, length-delimited fields.
#[derive(Default)]
pub(super) struct Message(pub(super) Vec<u8>);

impl Message {
    pub(super) fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    pub(super) fn int(&mut self, field: u32, v: u64) -> &mut Self {
        self.varint(u64::from(field) << 3);
        self.varint(v);
        self
    }

    pub(super) fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.varint((u64::from(field) << 3) | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub(super) fn text(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    pub(super) fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// TensorProto.DataType: STRING 8, DOUBLE 11.
pub(super) const DOUBLE: u64 = 11;
const STRING: u64 = 8;

/// A double tensor initializer (TensorProto: dims 1, data_type 2, name 8, raw_data 9).
pub(super) fn tensor(name: &str, dims: &[u64], values: &[f64]) -> Message {
    let mut t = Message::default();
    for d in dims {
        t.int(1, *d);
    }
    t.int(2, DOUBLE).text(8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// A graph input or output: double [N, width] (ValueInfoProto → TypeProto → Tensor → shape).
pub(super) fn value_info(name: &str, elem: u64, width: u64) -> Message {
    let mut rows = Message::default();
    rows.text(2, "N");
    let mut cols = Message::default();
    cols.int(1, width);
    let mut shape = Message::default();
    shape.message(1, &rows).message(1, &cols);
    let mut tensor_type = Message::default();
    tensor_type.int(1, elem).message(2, &shape);
    let mut type_proto = Message::default();
    type_proto.message(1, &tensor_type);
    let mut v = Message::default();
    v.text(1, name).message(2, &type_proto);
    v
}

pub(super) fn node(op: &str, inputs: &[&str], output: &str) -> Message {
    let mut n = Message::default();
    for i in inputs {
        n.text(1, i);
    }
    n.text(2, output).text(3, output).text(4, op);
    n
}

pub fn write(model: &Model) -> Result<Vec<u8>> {
    let refuse = |why: String| {
        DataFusionError::Plan(format!(
            "EXPORT MODEL: '{}@{}' cannot be written as ONNX: {why}",
            model.name, model.version
        ))
    };
    if model.calibration.is_some() {
        return Err(refuse("its calibration map has no ONNX form here".into()));
    }
    if let Some(trees) = &model.trees {
        let (graph, inputs) = super::onnx_trees::graph(model, trees).map_err(refuse)?;
        // ai.onnx.ml opset 5 (TreeEnsemble) came with IR version 10 (ONNX 1.16).
        return Ok(envelope(
            &graph,
            &[("", 13), ("ai.onnx.ml", 5)],
            10,
            &inputs,
        ));
    }
    let classifier = match model.options.model_type {
        ModelType::LogisticRegression => true,
        ModelType::LinearRegression => false,
        other => {
            return Err(refuse(format!(
                "format 'onnx' writes logistic and linear regressions and boosted trees, not a {}",
                other.name()
            )));
        }
    };
    // Numbers go through one MatMul; each category column through a LabelEncoder from its
    // strings to their coefficients (unknown → 0.0, as one-hot all zeros).
    let (mut weights, mut numeric) = (vec![], vec![]);
    let mut categories: Vec<(&str, &[String], &[f64])> = vec![];
    let mut j = 0;
    for e in &model.encoders {
        match e {
            Encoder::Numeric { column, .. } => {
                weights.push(model.coefficients[j]);
                numeric.push(column.clone());
            }
            Encoder::OneHot {
                column,
                categories: c,
                ..
            } => categories.push((column, c, &model.coefficients[j..j + c.len()])),
            other => {
                return Err(refuse(format!(
                    "input '{}' is a {}; the ONNX graph takes numbers and categories",
                    other.column(),
                    if matches!(other, Encoder::Date { .. }) {
                        "date"
                    } else {
                        "WoE-binned characteristic"
                    }
                )));
            }
        }
        j += e.width();
    }
    if categories.iter().any(|(c, _, _)| *c == "features") && !weights.is_empty() {
        return Err(refuse(
            "a category column is named 'features', the name of the numbers' input".into(),
        ));
    }
    let output = if classifier {
        "probability"
    } else {
        "prediction"
    };
    let mut graph = Message::default();
    let mut terms: Vec<String> = vec![];
    if !weights.is_empty() {
        graph.message(1, &node("MatMul", &["features", "weights"], "numbers"));
        terms.push("numbers".into());
    }
    for (column, cats, w) in &categories {
        let term = format!("{column}.points");
        let mut encoder = node("LabelEncoder", &[column], &term);
        encoder
            .message(5, &strings("keys_strings", cats))
            .message(
                5,
                &tensor_attribute("values_tensor", &tensor("values", &[w.len() as u64], w)),
            )
            .message(
                5,
                &tensor_attribute("default_tensor", &tensor("default", &[1], &[0.0])),
            )
            .text(7, "ai.onnx.ml");
        graph.message(1, &encoder);
        terms.push(term);
    }
    let mut sum = terms[0].clone();
    for (k, t) in terms.iter().enumerate().skip(1) {
        let next = format!("sum_{k}");
        graph.message(1, &node("Add", &[&sum, t], &next));
        sum = next;
    }
    let margin = if classifier { "margin" } else { output };
    graph.message(1, &node("Add", &[&sum, "intercept"], margin));
    if classifier {
        graph.message(1, &node("Sigmoid", &["margin"], output));
    }
    graph.text(2, &format!("augur_{}_{}", model.name, model.version));
    if !weights.is_empty() {
        graph.message(5, &tensor("weights", &[weights.len() as u64, 1], &weights));
    }
    graph.message(5, &tensor("intercept", &[1], &[model.intercept]));
    if !weights.is_empty() {
        graph.message(11, &value_info("features", DOUBLE, weights.len() as u64));
    }
    for (column, _, _) in &categories {
        graph.message(11, &value_info(column, STRING, 1));
    }
    graph.message(12, &value_info(output, DOUBLE, 1));
    if categories.is_empty() {
        Ok(envelope(&graph, &[("", 13)], 7, &numeric))
    } else {
        // LabelEncoder-4 (double values) is in ai.onnx.ml opset 4+, IR version 9+.
        Ok(envelope(
            &graph,
            &[("", 13), ("ai.onnx.ml", 5)],
            10,
            &numeric,
        ))
    }
}

/// Attributes (AttributeProto: name 1, i 3, t 5, ints 8, strings 9, type 20).
pub(super) fn ints(name: &str, values: &[u64]) -> Message {
    let mut a = Message::default();
    a.text(1, name);
    for v in values {
        a.int(8, *v);
    }
    a.int(20, 7); // INTS
    a
}

pub(super) fn int(name: &str, value: u64) -> Message {
    let mut a = Message::default();
    a.text(1, name).int(3, value).int(20, 2); // INT
    a
}

pub(super) fn strings(name: &str, values: &[String]) -> Message {
    let mut a = Message::default();
    a.text(1, name);
    for v in values {
        a.text(9, v);
    }
    a.int(20, 8); // STRINGS
    a
}

pub(super) fn tensor_attribute(name: &str, t: &Message) -> Message {
    let mut a = Message::default();
    a.text(1, name).message(5, t).int(20, 4); // TENSOR
    a
}

/// The ModelProto around a graph: IR version, producer, operator sets, and the model's input
/// columns (in the features tensor's order) as metadata.
pub(super) fn envelope(
    graph: &Message,
    opsets: &[(&str, u64)],
    ir: u64,
    inputs: &[String],
) -> Vec<u8> {
    let mut m = Message::default();
    m.int(1, ir)
        .text(2, "augur")
        .text(3, env!("CARGO_PKG_VERSION"))
        .message(7, graph);
    for (domain, version) in opsets {
        let mut opset = Message::default();
        opset.text(1, domain).int(2, *version);
        m.message(8, &opset);
    }
    let mut doc = Message::default();
    doc.text(1, "inputs").text(2, &inputs.join(","));
    m.message(14, &doc);
    m.0
}
