//! LightGBM's text model format (model.txt): reading one into a `TreeModel` — numerical,
//! categorical and missing-value splits, binary and identity-link regression objectives,
//! pandas category lists — and writing one that LightGBM loads and scores identically.

use std::collections::HashMap;

use super::TreeModel;
use super::data::{Feature, FeatureKind};
use super::params::Objective;
use super::tree::Tree;

/// Objectives whose raw score is the prediction (identity link).
const IDENTITY_OBJECTIVES: &[&str] = &[
    "regression",
    "regression_l2",
    "l2",
    "mean_squared_error",
    "mse",
    "regression_l1",
    "l1",
    "mae",
    "huber",
    "fair",
    "quantile",
    "mape",
];

fn err(message: impl Into<String>) -> String {
    message.into()
}

fn numbers<T: std::str::FromStr>(text: &str, key: &str, tree: usize) -> Result<Vec<T>, String> {
    text.split_whitespace()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("Tree={tree}: {key} has '{v}', which is not a number"))
        })
        .collect()
}

fn float(v: &str) -> Option<f64> {
    match v {
        "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        "nan" | "-nan" | "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

fn floats(text: &str, key: &str, tree: usize) -> Result<Vec<f64>, String> {
    text.split_whitespace()
        .map(|v| {
            float(v).ok_or_else(|| format!("Tree={tree}: {key} has '{v}', which is not a number"))
        })
        .collect()
}

/// Parse a LightGBM model.txt. Errors say what is wrong (not LightGBM's, truncated,
/// unsupported objective or tree kind).
pub fn parse(text: &str) -> Result<TreeModel, String> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).peekable();
    while lines.peek().is_some_and(|l| l.trim().is_empty()) {
        lines.next();
    }
    if lines.next().map(str::trim) != Some("tree") {
        return Err(err(
            "this is not a LightGBM text model: it does not start with the line 'tree' (save it with \
             booster.save_model('model.txt'))",
        ));
    }
    let mut header: HashMap<&str, &str> = HashMap::new();
    while let Some(line) = lines.peek() {
        if line.starts_with("Tree=") || line.starts_with("end of trees") {
            break;
        }
        let line = lines.next().unwrap_or_default();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => header.insert(k, v),
            None => header.insert(line, ""),
        };
    }
    let get = |k: &str| {
        header.get(k).copied().ok_or_else(|| {
            format!("the model file has no '{k}=' line: it is not a complete LightGBM model")
        })
    };
    let num_class: usize = get("num_class")?
        .trim()
        .parse()
        .map_err(|_| err("num_class is not a number"))?;
    if num_class != 1
        || header
            .get("num_tree_per_iteration")
            .is_some_and(|v| v.trim() != "1")
    {
        return Err(format!(
            "the model has {num_class} classes: multiclass LightGBM models are not supported (binary and regression are)"
        ));
    }
    if header.contains_key("average_output") {
        return Err(err(
            "random-forest LightGBM models (average_output) are not supported",
        ));
    }
    let max_feature: usize = get("max_feature_idx")?
        .trim()
        .parse()
        .map_err(|_| err("max_feature_idx is not a number"))?;
    let names: Vec<String> = get("feature_names")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if names.len() != max_feature + 1 {
        return Err(format!(
            "feature_names lists {} names for {} features",
            names.len(),
            max_feature + 1
        ));
    }
    let infos: Vec<String> = get("feature_infos")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if infos.len() != names.len() {
        return Err(format!(
            "feature_infos has {} entries for {} features",
            infos.len(),
            names.len()
        ));
    }
    let objective_line = get("objective")?;
    let objective_name = objective_line.split_whitespace().next().unwrap_or("");
    let objective = if objective_name == "binary" {
        if let Some(s) = objective_line
            .split_whitespace()
            .find_map(|p| p.strip_prefix("sigmoid:"))
            && float(s) != Some(1.0)
        {
            return Err(format!(
                "binary models with sigmoid:{s} are not supported (only sigmoid:1)"
            ));
        }
        Objective::Binary
    } else if IDENTITY_OBJECTIVES.contains(&objective_name) {
        Objective::Regression
    } else {
        return Err(format!(
            "objective '{objective_name}' is not supported: binary and regression (l2, l1, huber, fair, quantile, mape) are"
        ));
    };
    let monotone: Vec<i8> = match header.get("monotone_constraints") {
        Some(v) => v
            .split_whitespace()
            .map(|x| {
                x.parse::<i8>()
                    .map_err(|_| format!("monotone_constraints has '{x}'"))
            })
            .collect::<Result<_, _>>()?,
        None => vec![0; names.len()],
    };
    let expected_trees: Option<usize> = header
        .get("tree_sizes")
        .map(|v| v.split_whitespace().count());

    let mut trees = vec![];
    let mut ended = false;
    while let Some(line) = lines.next() {
        if line.starts_with("end of trees") {
            ended = true;
            break;
        }
        let Some(index) = line.strip_prefix("Tree=") else {
            continue;
        };
        let index: usize = index
            .trim()
            .parse()
            .map_err(|_| format!("bad tree header '{line}'"))?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() || l.starts_with("Tree=") || l.starts_with("end of trees") {
                break;
            }
            let l = lines.next().unwrap_or_default();
            if let Some((k, v)) = l.split_once('=') {
                fields.insert(k, v);
            }
        }
        trees.push(parse_tree(index, &fields, names.len())?);
    }
    if !ended || expected_trees.is_some_and(|n| n != trees.len()) {
        return Err(format!(
            "the model file is truncated: {} trees read{}, and no 'end of trees' line",
            trees.len(),
            expected_trees
                .map(|n| format!(" of {n}"))
                .unwrap_or_default()
        ));
    }
    if trees.is_empty() {
        return Err(err("the model has no trees"));
    }
    // The rest: parameters (for the categorical columns) and pandas' category lists.
    let rest: Vec<&str> = lines.collect();
    let mut categorical: Vec<usize> = vec![];
    let mut pandas: Option<serde_json::Value> = None;
    for l in &rest {
        if let Some(v) = l
            .strip_prefix("[categorical_feature: ")
            .and_then(|v| v.strip_suffix(']'))
        {
            categorical = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        }
        if let Some(v) = l.strip_prefix("pandas_categorical:") {
            pandas = serde_json::from_str(v).ok();
        }
    }
    if categorical.is_empty() {
        // Without the parameter, categorical features are those whose info lists categories.
        categorical = infos
            .iter()
            .enumerate()
            .filter(|(_, i)| *i != "none" && !i.starts_with('['))
            .map(|(k, _)| k)
            .collect();
    }
    categorical.sort_unstable();
    let lists: Vec<Vec<String>> = match pandas {
        Some(serde_json::Value::Array(lists)) => lists
            .iter()
            .map(|l| {
                l.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect(),
        _ => vec![],
    };
    let features = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let kind = match categorical.iter().position(|c| *c == i) {
                Some(k) if k < lists.len() => FeatureKind::Categorical {
                    categories: lists[k].clone(),
                },
                _ => FeatureKind::Numeric,
            };
            Feature {
                name: name.clone(),
                input: i,
                kind,
            }
        })
        .collect();
    Ok(TreeModel {
        objective,
        features,
        trees,
        init_score: 0.0,
        monotone: if monotone.len() == names.len() {
            monotone
        } else {
            vec![0; names.len()]
        },
        feature_infos: infos,
        metric: None,
        validation: vec![],
        iterations_run: 0,
        imported_from: None,
    })
}

fn parse_tree(index: usize, f: &HashMap<&str, &str>, num_features: usize) -> Result<Tree, String> {
    let field = |k: &str| -> Result<&str, String> {
        f.get(k)
            .copied()
            .ok_or_else(|| format!("Tree={index} has no {k}: the file is truncated or damaged"))
    };
    let num_leaves: usize = field("num_leaves")?
        .trim()
        .parse()
        .map_err(|_| format!("Tree={index}: num_leaves is not a number"))?;
    let num_cat: usize = field("num_cat")?
        .trim()
        .parse()
        .map_err(|_| format!("Tree={index}: num_cat is not a number"))?;
    if f.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(format!(
            "Tree={index} is a linear tree (linear_tree=true), which is not supported"
        ));
    }
    let leaf_value = floats(field("leaf_value")?, "leaf_value", index)?;
    let leaf_count: Vec<u64> = match f.get("leaf_count") {
        Some(v) => numbers(v, "leaf_count", index)?,
        None => vec![0; num_leaves],
    };
    let shrinkage = f
        .get("shrinkage")
        .and_then(|v| float(v.trim()))
        .unwrap_or(1.0);
    let mut tree = Tree {
        num_leaves,
        leaf_value,
        leaf_weight: match f.get("leaf_weight") {
            Some(v) => floats(v, "leaf_weight", index)?,
            None => vec![0.0; num_leaves],
        },
        leaf_count,
        shrinkage,
        ..Default::default()
    };
    if num_leaves > 1 {
        tree.split_feature = numbers(field("split_feature")?, "split_feature", index)?;
        tree.split_gain = match f.get("split_gain") {
            Some(v) => floats(v, "split_gain", index)?,
            None => vec![0.0; num_leaves - 1],
        };
        tree.threshold = floats(field("threshold")?, "threshold", index)?;
        tree.decision_type = match f.get("decision_type") {
            Some(v) => numbers::<i16>(v, "decision_type", index)?
                .into_iter()
                .map(|d| d as u8)
                .collect(),
            None => vec![0; num_leaves - 1],
        };
        tree.left_child = numbers(field("left_child")?, "left_child", index)?;
        tree.right_child = numbers(field("right_child")?, "right_child", index)?;
        tree.internal_value = match f.get("internal_value") {
            Some(v) => floats(v, "internal_value", index)?,
            None => vec![0.0; num_leaves - 1],
        };
        tree.internal_weight = match f.get("internal_weight") {
            Some(v) => floats(v, "internal_weight", index)?,
            None => vec![0.0; num_leaves - 1],
        };
        tree.internal_count = match f.get("internal_count") {
            Some(v) => numbers(v, "internal_count", index)?,
            None => vec![0; num_leaves - 1],
        };
        if num_cat > 0 {
            tree.cat_boundaries = numbers(field("cat_boundaries")?, "cat_boundaries", index)?;
            tree.cat_threshold = numbers(field("cat_threshold")?, "cat_threshold", index)?;
            if tree.cat_boundaries.len() != num_cat + 1 {
                return Err(format!(
                    "Tree={index}: cat_boundaries has {} values for num_cat={num_cat}",
                    tree.cat_boundaries.len()
                ));
            }
        }
    }
    tree.validate(num_features)
        .map_err(|e| format!("Tree={index}: {e}"))?;
    Ok(tree)
}

/// A number as LightGBM writes doubles: enough digits to read back the same value.
fn num(v: f64) -> String {
    if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:e}")
    }
}

fn join<T>(values: &[T], f: impl Fn(&T) -> String) -> String {
    values.iter().map(f).collect::<Vec<_>>().join(" ")
}

fn tree_text(t: &Tree) -> String {
    let mut s = String::new();
    s += &format!("num_leaves={}\n", t.num_leaves);
    let num_cat = t.cat_boundaries.len().saturating_sub(1);
    s += &format!("num_cat={num_cat}\n");
    if t.num_leaves > 1 {
        s += &format!(
            "split_feature={}\n",
            join(&t.split_feature, |v| v.to_string())
        );
        s += &format!("split_gain={}\n", join(&t.split_gain, |v| num(*v)));
        s += &format!("threshold={}\n", join(&t.threshold, |v| num(*v)));
        s += &format!(
            "decision_type={}\n",
            join(&t.decision_type, |v| v.to_string())
        );
        s += &format!("left_child={}\n", join(&t.left_child, |v| v.to_string()));
        s += &format!("right_child={}\n", join(&t.right_child, |v| v.to_string()));
    }
    s += &format!("leaf_value={}\n", join(&t.leaf_value, |v| num(*v)));
    s += &format!("leaf_weight={}\n", join(&t.leaf_weight, |v| num(*v)));
    s += &format!("leaf_count={}\n", join(&t.leaf_count, |v| v.to_string()));
    if t.num_leaves > 1 {
        s += &format!("internal_value={}\n", join(&t.internal_value, |v| num(*v)));
        s += &format!(
            "internal_weight={}\n",
            join(&t.internal_weight, |v| num(*v))
        );
        s += &format!(
            "internal_count={}\n",
            join(&t.internal_count, |v| v.to_string())
        );
    }
    if num_cat > 0 {
        s += &format!(
            "cat_boundaries={}\n",
            join(&t.cat_boundaries, |v| v.to_string())
        );
        s += &format!(
            "cat_threshold={}\n",
            join(&t.cat_threshold, |v| v.to_string())
        );
    }
    s += "is_linear=0\n";
    s += &format!("shrinkage={}\n\n", num(t.shrinkage));
    s
}

/// Write `model` as a LightGBM model.txt; `params` are extra `[name: value]` lines.
pub fn write(model: &TreeModel, params: &[(String, String)]) -> String {
    let names: Vec<String> = model
        .features
        .iter()
        .map(|f| f.name.replace(|c: char| c.is_whitespace() || c == '=', "_"))
        .collect();
    let blocks: Vec<String> = model
        .trees
        .iter()
        .enumerate()
        .map(|(i, t)| format!("Tree={i}\n{}\n", tree_text(t)))
        .collect();
    let mut s =
        String::from("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n");
    s += &format!("max_feature_idx={}\n", names.len().saturating_sub(1));
    s += &format!("objective={}\n", model.objective.lightgbm_name());
    s += &format!("feature_names={}\n", names.join(" "));
    if model.monotone.iter().any(|m| *m != 0) {
        s += &format!(
            "monotone_constraints={}\n",
            join(&model.monotone, |v| v.to_string())
        );
    }
    s += &format!("feature_infos={}\n", model.feature_infos.join(" "));
    s += &format!("tree_sizes={}\n\n", join(&blocks, |b| b.len().to_string()));
    for b in &blocks {
        s += b;
    }
    s += "end of trees\n\nfeature_importances:\n";
    let (splits, _) = model.importance();
    let mut order: Vec<usize> = (0..names.len()).filter(|f| splits[*f] > 0).collect();
    order.sort_by(|a, b| splits[*b].cmp(&splits[*a]));
    for f in order {
        s += &format!("{}={}\n", names[f], splits[f]);
    }
    s += "\nparameters:\n";
    let categorical: Vec<String> = model
        .features
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.kind, FeatureKind::Categorical { .. }))
        .map(|(i, _)| i.to_string())
        .collect();
    s += "[boosting: gbdt]\n";
    s += &format!(
        "[objective: {}]\n",
        if model.objective == Objective::Binary {
            "binary"
        } else {
            "regression"
        }
    );
    for (k, v) in params {
        s += &format!("[{k}: {v}]\n");
    }
    if !categorical.is_empty() {
        s += &format!("[categorical_feature: {}]\n", categorical.join(","));
    }
    s += "\nend of parameters\n\n";
    let lists: Vec<&Vec<String>> = model
        .features
        .iter()
        .filter_map(|f| match &f.kind {
            FeatureKind::Categorical { categories } => Some(categories),
            _ => None,
        })
        .collect();
    s += &format!(
        "pandas_categorical:{}\n",
        if lists.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(&lists).unwrap_or_else(|_| "null".into())
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
max_feature_idx=1\nobjective=binary sigmoid:1\nfeature_names=a b\nfeature_infos=[0:10] 0:1:2\n\
tree_sizes=1 1\n\nTree=0\nnum_leaves=3\nnum_cat=1\nsplit_feature=0 1\nsplit_gain=5 2\n\
threshold=4.5 0\ndecision_type=10 1\nleft_child=-1 -2\nright_child=1 -3\n\
leaf_value=-0.5 0.25 0.75\nleaf_weight=1 1 1\nleaf_count=10 5 5\ninternal_value=0 0\n\
internal_weight=0 0\ninternal_count=20 10\ncat_boundaries=0 1\ncat_threshold=5\nis_linear=0\nshrinkage=1\n\n\n\
Tree=1\nnum_leaves=1\nnum_cat=0\nleaf_value=0.125\nis_linear=0\nshrinkage=0.1\n\n\nend of trees\n\n\
parameters:\n[categorical_feature: 1]\nend of parameters\n\npandas_categorical:[[\"x\",\"y\",\"z\"]]\n";

    #[test]
    fn reads_and_writes_back() {
        let m = parse(MODEL).unwrap();
        assert_eq!(m.trees.len(), 2);
        assert_eq!(
            m.features[1].kind,
            FeatureKind::Categorical {
                categories: vec!["x".into(), "y".into(), "z".into()]
            }
        );
        // a = 5 goes right; b = code 2 is in the bitset {0, 2} (5 = 0b101): leaf 1.
        let t = &m.trees[0];
        assert_eq!(t.leaf(|f| if f == 0 { 5.0 } else { 2.0 }), 1);
        assert_eq!(t.leaf(|f| if f == 0 { 5.0 } else { 1.0 }), 2);
        let again = parse(&write(&m, &[])).unwrap();
        assert_eq!(again.trees, m.trees);
        assert_eq!(again.features, m.features);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse("hello").unwrap_err().contains("not a LightGBM"));
        let cut = &MODEL[..MODEL.find("Tree=1").unwrap()];
        assert!(
            parse(cut).unwrap_err().contains("truncated"),
            "{}",
            parse(cut).unwrap_err()
        );
        let multi = MODEL.replace("num_class=1", "num_class=3");
        assert!(parse(&multi).unwrap_err().contains("multiclass"));
        let poisson = MODEL.replace("objective=binary sigmoid:1", "objective=poisson");
        assert!(
            parse(&poisson)
                .unwrap_err()
                .contains("'poisson' is not supported")
        );
        let bad_child = MODEL.replace("right_child=1 -3", "right_child=7 -3");
        assert!(parse(&bad_child).is_err());
    }
}
