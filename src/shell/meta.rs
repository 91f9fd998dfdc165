//! Meta-commands (`.tables`, `\d t`, `.mode csv`…) from one table, shared by the shell and
//! scripts. Catalog commands are SQL over information_schema, shown like any result.

use crate::output::Format;

/// Front-end settings that meta-commands change.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: Format,
    pub timer: bool,
}

/// What a meta-command asks the front end to do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Run this SQL and print its result; `empty` is the message when it returns no rows.
    Query {
        sql: String,
        empty: Option<String>,
    },
    /// Run the statements of a file.
    Read(String),
    /// Print this text (help).
    Print(String),
    /// Settings changed; print this note on stderr.
    Note(String),
    Quit,
}

struct Command {
    names: &'static [&'static str],
    args: &'static str,
    help: &'static str,
}

const COMMANDS: &[Command] = &[
    Command {
        names: &[".tables", "\\dt"],
        args: "",
        help: "list tables and views",
    },
    Command {
        names: &[".schema"],
        args: "[TABLE]",
        help: "show CREATE statements of tables",
    },
    Command {
        names: &["\\d"],
        args: "[TABLE]",
        help: "list tables, or describe TABLE's columns",
    },
    Command {
        names: &[".mode"],
        args: "FORMAT",
        help: "output format: table, csv, tsv, json, ndjson, markdown, line",
    },
    Command {
        names: &[".timer"],
        args: "on|off",
        help: "print each statement's run time on stderr",
    },
    Command {
        names: &["\\timing"],
        args: "[on|off]",
        help: "toggle (or set) the timer",
    },
    Command {
        names: &[".read", "\\i"],
        args: "FILE",
        help: "run the SQL statements in FILE",
    },
    Command {
        names: &[".help", "\\?"],
        args: "",
        help: "this list",
    },
    Command {
        names: &[".help", "\\h"],
        args: "FUNCTION",
        help: "what FUNCTION does, its arguments and an example",
    },
    Command {
        names: &["\\df"],
        args: "[PATTERN]",
        help: "list functions (LIKE PATTERN)",
    },
    Command {
        names: &[".quit", ".exit", "\\q"],
        args: "",
        help: "leave the shell (Ctrl-D does too)",
    },
];

/// Names of all meta-commands, for completion.
pub fn names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().flat_map(|c| c.names.iter().copied())
}

pub fn help() -> String {
    let mut out = String::from("Meta-commands (one line, no semicolon):\n");
    for c in COMMANDS {
        let name = format!("{} {}", c.names.join(", "), c.args);
        out.push_str(&format!("  {name:<26} {}\n", c.help));
    }
    out.push_str(
        "SQL statements end with ';' and may span lines. Ctrl-C cancels a running query.\n\
         Files are tables: SELECT * FROM 'data.csv'; read_csv('x.txt', delimiter = ';').",
    );
    out
}

/// Table functions: DataFusion's information_schema lists only scalar, aggregate and
/// window functions, so their help lives here.
const TABLE_FUNCTIONS: &[(&str, &str)] = &[
    (
        "read_csv",
        "read_csv(path [, 'option', value …]): the rows of CSV files (path, glob or directory); options such as 'delimiter', ';' or 'has_header', false",
    ),
    (
        "read_parquet",
        "read_parquet(path): the rows of Parquet files (path, glob or directory)",
    ),
    (
        "generate_transactions",
        "generate_transactions(rows [, seed]): the synthetic credit-risk dataset of the demo (customer_id, transaction_date, transaction_amount, transaction_type, age, balance, prior_defaults, merchant_category, risk_score), deterministic for a seed (default 42). Example: SELECT * FROM generate_transactions(1000000, 7)",
    ),
    (
        "generate_series",
        "generate_series(start, stop [, step]): integers from start to stop inclusive",
    ),
    (
        "predict",
        "predict(model, table | (query)): the input rows with the model's prediction (and probability)",
    ),
    (
        "explain",
        "explain(model, table | (query) [, top_k]): the input rows with the prediction, raw_score, bias and contribution_<column> per input column (TreeSHAP for trees, w·(x − mean) for linear models), adding up to raw_score; with top_k only the k largest |contributions| per row, the rest NULL",
    ),
    (
        "reason_codes",
        "reason_codes(model, table | (query), k): the input rows with the prediction and, one row each, the k inputs pushing the score up most (reason_rank, feature, value, contribution): adverse-action reasons",
    ),
    (
        "feature_importance",
        "feature_importance(model): per input column the number of tree splits, their total gain, and the mean |contribution|",
    ),
    (
        "evaluate",
        "evaluate(model [, table | (query)]): one row of quality metrics (held-out rows by default)",
    ),
    (
        "model_weights",
        "model_weights(model): one row per coefficient, and the intercept",
    ),
    (
        "training_info",
        "training_info(model): one row per optimiser iteration (objective, gradient norm, step); for trees one per tree (leaves, validation metric)",
    ),
    (
        "feature_info",
        "feature_info(model): how each input column became features",
    ),
    (
        "roc_curve",
        "roc_curve(model): the ROC curve on the evaluation rows",
    ),
    (
        "confusion_matrix",
        "confusion_matrix(model [, threshold]): counts of predicted vs actual classes",
    ),
];

/// `.help NAME`: the function's documentation from information_schema.
fn function_help(name: &str) -> Action {
    let name = name
        .trim_end_matches("()")
        .to_lowercase()
        .replace('\'', "''");
    let empty = TABLE_FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| format!("table function {text}"))
        .unwrap_or_else(|| format!("no function named '{name}'; \\df lists them"));
    Action::Query {
        sql: format!(
            "WITH sigs AS (SELECT rid, '(' || string_agg(coalesce(parameter_name || ' ', '') || data_type, ', ' \
             ORDER BY ordinal_position) || ')' AS sig FROM information_schema.parameters \
             WHERE specific_name = '{name}' AND parameter_mode = 'IN' GROUP BY rid) \
             SELECT r.routine_name AS \"function\", lower(r.function_type) AS kind, r.description, \
             r.syntax_example AS example, (SELECT string_agg(DISTINCT sig, '; ') FROM sigs) AS signatures \
             FROM (SELECT DISTINCT routine_name, function_type, description, syntax_example \
             FROM information_schema.routines WHERE routine_name = '{name}') r"
        ),
        empty: Some(empty),
    }
}

/// Interpret one meta-command line.
pub fn interpret(line: &str, settings: &mut Settings) -> Result<Action, String> {
    let line = line.trim().trim_end_matches(';');
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!("{name}: too many arguments; see .help"));
    }
    let table_filter = |t: &str| format!("AND table_name = '{}'", t.replace('\'', "''"));
    match name {
        ".tables" | "\\dt" => Ok(Action::Query {
            sql: "SELECT table_name AS name, CASE table_type WHEN 'BASE TABLE' THEN 'table' \
                  WHEN 'VIEW' THEN 'view' ELSE lower(table_type) END AS type \
                  FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
                .into(),
            empty: Some("no tables".into()),
        }),
        ".schema" => Ok(Action::Query {
            sql: format!(
                "SELECT 'CREATE TABLE ' || table_name || ' (' || string_agg(column_name || ' ' || \
                 data_type || CASE is_nullable WHEN 'NO' THEN ' NOT NULL' ELSE '' END, ', ' \
                 ORDER BY ordinal_position) || ');' AS \"schema\" FROM information_schema.columns \
                 WHERE table_schema = 'public' {} GROUP BY table_name ORDER BY table_name",
                arg.map(table_filter).unwrap_or_default()
            ),
            empty: Some(match arg {
                Some(t) => format!("no table named '{t}'; .tables lists them"),
                None => "no tables".into(),
            }),
        }),
        "\\d" => match arg {
            None => interpret(".tables", settings),
            Some(t) => Ok(Action::Query {
                sql: format!(
                    "SELECT column_name AS \"column\", data_type AS \"type\", \
                     CASE is_nullable WHEN 'YES' THEN 'yes' ELSE 'no' END AS nullable \
                     FROM information_schema.columns WHERE table_schema = 'public' {} \
                     ORDER BY ordinal_position",
                    table_filter(t)
                ),
                empty: Some(format!("no table named '{t}'; \\dt lists them")),
            }),
        },
        ".mode" => match arg.and_then(Format::parse) {
            Some(f) => {
                settings.format = f;
                Ok(Action::Note(String::new()))
            }
            None => Err(format!(".mode needs one of: {}", Format::names())),
        },
        ".timer" | "\\timing" => {
            settings.timer = match arg {
                Some("on") => true,
                Some("off") => false,
                None if name == "\\timing" => !settings.timer,
                _ => return Err(format!("{name} takes on or off")),
            };
            Ok(Action::Note(format!(
                "timer {}",
                if settings.timer { "on" } else { "off" }
            )))
        }
        ".read" | "\\i" => match arg {
            Some(file) => Ok(Action::Read(file.trim_matches('\'').to_string())),
            None => Err(format!("{name} needs a file name")),
        },
        ".help" | "\\?" | "\\h" => match arg {
            None => Ok(Action::Print(help())),
            Some(f) => Ok(function_help(f)),
        },
        "\\df" => Ok(Action::Query {
            sql: format!(
                "SELECT DISTINCT routine_name AS name, lower(function_type) AS kind, description \
                 FROM information_schema.routines {} ORDER BY name",
                arg.map(|p| format!("WHERE routine_name LIKE '{}'", p.replace('\'', "''")))
                    .unwrap_or_default()
            ),
            empty: Some("no functions match".into()),
        }),
        ".quit" | ".exit" | "\\q" => Ok(Action::Quit),
        _ => Err(format!(
            "unknown command '{name}'; .help lists the commands"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_command_is_understood() {
        let mut s = Settings {
            format: Format::Table,
            timer: false,
        };
        for name in names() {
            let line = match name {
                ".mode" => ".mode csv".to_string(),
                ".timer" => ".timer on".to_string(),
                ".read" | "\\i" => format!("{name} x.sql"),
                other => other.to_string(),
            };
            assert!(interpret(&line, &mut s).is_ok(), "{line}");
        }
        assert_eq!(s.format, Format::Csv);
        assert!(interpret(".bogus", &mut s).unwrap_err().contains(".help"));
    }
}
