//! `EXPORT MODEL sc TO 'sc.pmml' OPTIONS (format = 'pmml')`: a scorecard as a PMML 4.4
//! `Scorecard` — one Characteristic per input, one Attribute per bin in Augur's order
//! (Missing first, then Special, then the ranges or category groups, then `True` for a
//! category never seen in training, which scores the points of WoE 0), reason codes by
//! `pointsBelow` against each characteristic's best bin, as `reason_codes` ranks them.

use datafusion::error::{DataFusionError, Result};

use super::binning::Cuts;
use super::model::Model;

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A PMML string array: values in double quotes, inner quotes escaped with a backslash.
fn string_array(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", xml(&v.replace('\\', "\\\\").replace('"', "\\\""))))
        .collect();
    format!(
        "<Array n=\"{}\" type=\"string\">{}</Array>",
        values.len(),
        items.join(" ")
    )
}

fn attribute(points: f64, predicate: &str) -> String {
    format!("        <Attribute partialScore=\"{points}\">{predicate}</Attribute>\n")
}

pub fn write(model: &Model) -> Result<String> {
    if model.options.scorecard.is_none() || model.calibration.is_some() {
        return Err(DataFusionError::Plan(format!(
            "EXPORT MODEL: format 'pmml' writes scorecards (uncalibrated); '{}@{}' is a {}{}",
            model.name,
            model.version,
            model.options.model_type.name(),
            if model.calibration.is_some() {
                " with a calibration map"
            } else {
                ""
            }
        )));
    }
    let bins = model.binnings();
    let mut dictionary = String::new();
    let mut mining = String::new();
    let mut characteristics = String::new();
    for (j, b) in bins.iter().enumerate() {
        let field = xml(&b.column);
        let (optype, data_type) = if b.is_numeric() {
            ("continuous", "double")
        } else {
            ("categorical", "string")
        };
        dictionary.push_str(&format!(
            "    <DataField name=\"{field}\" optype=\"{optype}\" dataType=\"{data_type}\"/>\n"
        ));
        mining.push_str(&format!(
            "      <MiningField name=\"{field}\" usageType=\"active\" invalidValueTreatment=\"asMissing\"/>\n"
        ));
        let points = |woe: f64| model.points(j, woe).unwrap_or(0.0);
        let best = b
            .bins
            .iter()
            .filter(|bin| bin.count() > 0.0)
            .map(|bin| points(bin.woe))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut attributes = attribute(
            points(b.bins[b.missing_bin()].woe),
            &format!("<SimplePredicate field=\"{field}\" operator=\"isMissing\"/>"),
        );
        if !b.special_values.is_empty() {
            let set = if b.is_numeric() {
                let values: Vec<String> =
                    b.numeric_specials().iter().map(|v| v.to_string()).collect();
                format!(
                    "<Array n=\"{}\" type=\"real\">{}</Array>",
                    values.len(),
                    values.join(" ")
                )
            } else {
                string_array(&b.special_values)
            };
            attributes.push_str(&attribute(
                points(b.bins[b.special_bin()].woe),
                &format!(
                    "<SimpleSetPredicate field=\"{field}\" booleanOperator=\"isIn\">{set}</SimpleSetPredicate>"
                ),
            ));
        }
        match &b.cuts {
            Cuts::Numeric { splits } => {
                for (i, s) in splits.iter().enumerate() {
                    attributes.push_str(&attribute(
                        points(b.bins[i].woe),
                        &format!(
                            "<SimplePredicate field=\"{field}\" operator=\"lessThan\" value=\"{s}\"/>"
                        ),
                    ));
                }
                attributes.push_str(&attribute(points(b.bins[splits.len()].woe), "<True/>"));
            }
            Cuts::Categorical { groups } => {
                for (i, g) in groups.iter().enumerate() {
                    attributes.push_str(&attribute(
                        points(b.bins[i].woe),
                        &format!(
                            "<SimpleSetPredicate field=\"{field}\" booleanOperator=\"isIn\">{}</SimpleSetPredicate>",
                            string_array(g)
                        ),
                    ));
                }
                attributes.push_str(&attribute(points(0.0), "<True/>"));
            }
        }
        characteristics.push_str(&format!(
            "      <Characteristic name=\"{field}_points\" reasonCode=\"{field}\" baselineScore=\"{best}\">\n{attributes}      </Characteristic>\n"
        ));
    }
    let reasons: String = (1..=bins.len().min(3))
        .map(|r| {
            format!(
                "      <OutputField name=\"Reason Code {r}\" rank=\"{r}\" feature=\"reasonCode\" dataType=\"string\" optype=\"categorical\"/>\n"
            )
        })
        .collect();
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header description="Augur scorecard {name}@{version}: score = sum of the characteristics' points"/>
  <DataDictionary numberOfFields="{fields}">
{dictionary}    <DataField name="score" optype="continuous" dataType="double"/>
  </DataDictionary>
  <Scorecard modelName="{name}" functionName="regression" useReasonCodes="true" reasonCodeAlgorithm="pointsBelow" initialScore="0" baselineMethod="other">
    <MiningSchema>
{mining}      <MiningField name="score" usageType="predicted"/>
    </MiningSchema>
    <Output>
      <OutputField name="Final Score" feature="predictedValue" dataType="double" optype="continuous"/>
{reasons}    </Output>
    <Characteristics>
{characteristics}    </Characteristics>
  </Scorecard>
</PMML>
"#,
        name = xml(&model.name),
        version = model.version,
        fields = bins.len() + 1,
    ))
}
