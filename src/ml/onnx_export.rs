//! `EXPORT MODEL m TO 'm.onnx' OPTIONS (format = 'onnx')`: a logistic or linear regression on
//! numeric inputs as an ONNX graph in double precision (standard opset-13 `MatMul`, `Add` and,
//! for classifiers, `Sigmoid`; ai.onnx.ml's `LinearClassifier` keeps float32 coefficients).
//! Input `features`: double [N, d], the model's inputs in order; output `probability` (or
//! `prediction`): double [N, 1]. The protobuf is written here: five message types.

use datafusion::error::{DataFusionError, Result};

use super::model::Model;
use super::options::ModelType;
use super::preprocess::Encoder;

/// Protobuf wire format: varints, length-delimited fields.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
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

    fn int(&mut self, field: u32, v: u64) -> &mut Self {
        self.varint(u64::from(field) << 3);
        self.varint(v);
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.varint((u64::from(field) << 3) | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn text(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

const DOUBLE: u64 = 11;

/// A double tensor initializer (TensorProto: dims 1, data_type 2, name 8, raw_data 9).
fn tensor(name: &str, dims: &[u64], values: &[f64]) -> Message {
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
fn value_info(name: &str, width: u64) -> Message {
    let mut rows = Message::default();
    rows.text(2, "N");
    let mut cols = Message::default();
    cols.int(1, width);
    let mut shape = Message::default();
    shape.message(1, &rows).message(1, &cols);
    let mut tensor_type = Message::default();
    tensor_type.int(1, DOUBLE).message(2, &shape);
    let mut type_proto = Message::default();
    type_proto.message(1, &tensor_type);
    let mut v = Message::default();
    v.text(1, name).message(2, &type_proto);
    v
}

fn node(op: &str, inputs: &[&str], output: &str) -> Message {
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
    let classifier = match model.options.model_type {
        ModelType::LogisticRegression => true,
        ModelType::LinearRegression => false,
        other => {
            return Err(refuse(format!(
                "format 'onnx' writes logistic and linear regressions, not a {}",
                other.name()
            )));
        }
    };
    if model.calibration.is_some() {
        return Err(refuse("its calibration map has no ONNX form here".into()));
    }
    if let Some(e) = model
        .encoders
        .iter()
        .find(|e| !matches!(e, Encoder::Numeric { .. }))
    {
        return Err(refuse(format!(
            "input '{}' is not numeric; the ONNX graph takes numbers only",
            e.column()
        )));
    }
    let d = model.coefficients.len() as u64;
    let output = if classifier {
        "probability"
    } else {
        "prediction"
    };
    let mut graph = Message::default();
    graph.message(1, &node("MatMul", &["features", "weights"], "margin_0"));
    graph.message(
        1,
        &node(
            "Add",
            &["margin_0", "intercept"],
            if classifier { "margin" } else { output },
        ),
    );
    if classifier {
        graph.message(1, &node("Sigmoid", &["margin"], output));
    }
    graph.text(2, &format!("augur_{}_{}", model.name, model.version));
    graph.message(5, &tensor("weights", &[d, 1], &model.coefficients));
    graph.message(5, &tensor("intercept", &[1], &[model.intercept]));
    graph.message(11, &value_info("features", d));
    graph.message(12, &value_info(output, 1));
    let mut opset = Message::default();
    opset.text(1, "").int(2, 13);
    let mut m = Message::default();
    m.int(1, 7) // IR version 7 (ONNX 1.8+), enough for opset 13
        .text(2, "augur")
        .text(3, env!("CARGO_PKG_VERSION"))
        .message(7, &graph)
        .message(8, &opset);
    let mut doc = Message::default();
    doc.text(1, "inputs").text(2, &model.inputs.join(","));
    m.message(14, &doc);
    Ok(m.0)
}
