//! Refusing statements too deeply nested to plan: DataFusion's planning time grows
//! quadratically with expression depth (a 20,000-term `1+1+…` takes minutes), and deep
//! recursion risks the stack. SQLSTATE 54001.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};

use crate::error::{AugurError, Result};

/// Deepest expression nesting accepted; far beyond hand-written SQL, well before planning
/// slows to seconds.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

struct Depth {
    current: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.current += 1;
        if self.current > MAX_EXPRESSION_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

pub fn check(statement: &Statement) -> Result<()> {
    let mut depth = Depth { current: 0 };
    let flow = match statement {
        Statement::Statement(s) => s.visit(&mut depth),
        Statement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(q) => q.visit(&mut depth),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        Statement::Explain(explain) => return check(&explain.statement),
        _ => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(AugurError::TooComplex(format!(
            "expressions are nested more than {MAX_EXPRESSION_DEPTH} deep; split the statement, \
             or use IN (…) instead of long OR chains and sum() over rows instead of long + chains"
        ))),
    }
}
