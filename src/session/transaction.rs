//! Transaction blocks as PostgreSQL clients use them: `BEGIN … COMMIT | ROLLBACK`,
//! `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`. Each statement still commits when it finishes;
//! a block keeps an undo image of every object it changes (catalog/undo.rs) and ROLLBACK
//! puts them back in one commit. Other connections may read what a block changed before
//! it ends, but not change it (55P03) until then. After an error the block refuses
//! everything but ROLLBACK (25P02), and COMMIT rolls back, as in PostgreSQL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::DatabaseSchema;
use crate::catalog::undo::{self, ObjectKey, Undo};
use crate::error::{AugurError, ErrorClass, Result};
use crate::notices::Notices;
use crate::parser::normalize_ident;

static OWNERS: AtomicU64 = AtomicU64::new(1);

/// A session's transaction state, shared by its clones.
#[derive(Clone)]
pub struct Transaction {
    state: Arc<Mutex<State>>,
}

struct State {
    owner: u64,
    schema: Arc<DatabaseSchema>,
    block: Option<Block>,
}

#[derive(Default)]
struct Block {
    /// Savepoint names with the undo length when each was set, oldest first.
    savepoints: Vec<(String, usize)>,
    undo: Vec<Undo>,
    failed: bool,
}

const FIRST_WORDS: &[&str] = &[
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
];

/// Whether `sql` is a transaction statement (answered by [`Transaction::handle`]).
pub fn is_transaction_statement(sql: &str) -> bool {
    FIRST_WORDS.contains(&crate::parser::first_word(sql).as_str())
}

fn error(class: ErrorClass, message: impl Into<String>) -> AugurError {
    AugurError::Transaction {
        class,
        message: message.into(),
    }
}

/// A session's transaction state as the wire protocol reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    Idle,
    InBlock,
    Failed,
}

impl Transaction {
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        Transaction {
            state: Arc::new(Mutex::new(State {
                owner: OWNERS.fetch_add(1, Ordering::Relaxed),
                schema,
                block: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `sql` if it is a transaction statement; `false` hands it on.
    pub fn handle(&self, sql: &str, notices: &Notices) -> Result<bool> {
        let first = crate::parser::first_word(sql);
        if !FIRST_WORDS.contains(&first.as_str()) {
            return Ok(false);
        }
        let mut state = self.lock();
        // sqlparser does not know END and ABORT in every form.
        match first.as_str() {
            "END" => return state.commit(notices).map(|_| true),
            "ABORT" => return state.rollback(notices).map(|_| true),
            _ => {}
        }
        let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
            return Ok(false);
        };
        if statements.len() != 1 {
            return Ok(false);
        }
        match statements.remove(0) {
            Statement::StartTransaction { .. } => {
                if state.block.is_some() {
                    notices.push("WARNING: there is already a transaction in progress".into());
                } else {
                    state.block = Some(Block::default());
                }
            }
            Statement::Commit { .. } => state.commit(notices)?,
            Statement::Rollback {
                savepoint: None, ..
            } => state.rollback(notices)?,
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => state.rollback_to(&normalize_ident(&name))?,
            Statement::Savepoint { name } => {
                let block = state.open_block("SAVEPOINT")?;
                let at = block.undo.len();
                block.savepoints.push((normalize_ident(&name), at));
            }
            Statement::ReleaseSavepoint { name } => {
                let block = state.open_block("RELEASE SAVEPOINT")?;
                let at = block.find(&normalize_ident(&name))?;
                block.savepoints.truncate(at);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuse a statement in a block that failed, as PostgreSQL does.
    pub fn check(&self) -> Result<()> {
        match &self.lock().block {
            Some(block) if block.failed => Err(error(
                ErrorClass::InFailedTransaction,
                "current transaction is aborted, commands ignored until end of transaction \
                 block (ROLLBACK, or ROLLBACK TO a savepoint, to go on)",
            )),
            _ => Ok(()),
        }
    }

    /// Whether a block is open, and whether it failed: PostgreSQL's ReadyForQuery status
    /// ('I', 'T', 'E').
    pub fn status(&self) -> BlockStatus {
        match &self.lock().block {
            None => BlockStatus::Idle,
            Some(block) if block.failed => BlockStatus::Failed,
            Some(_) => BlockStatus::InBlock,
        }
    }

    /// A statement in the block failed: only ROLLBACK may follow.
    pub fn mark_failed(&self) {
        if let Some(block) = &mut self.lock().block {
            block.failed = true;
        }
    }

    /// Called before a statement changes `objects`: refuses objects another block holds;
    /// inside a block, holds them and keeps their undo images.
    pub fn before_write(&self, objects: &[ObjectKey]) -> Result<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let locks = state.schema.store().locks();
        for key in objects {
            let free = match &state.block {
                Some(_) => locks.claim(key, state.owner).is_ok(),
                None => locks.is_free_for(key, state.owner),
            };
            if !free {
                return Err(error(
                    ErrorClass::LockNotAvailable,
                    format!(
                        "{key} is being changed in another connection's open transaction; \
                         retry after it commits or rolls back"
                    ),
                ));
            }
            if let Some(block) = &mut state.block {
                let since = block.savepoints.last().map_or(0, |s| s.1);
                if !block.undo[since..].iter().any(|u| u.key() == key) {
                    block.undo.push(Undo::capture(&state.schema, key.clone()));
                }
            }
        }
        Ok(())
    }
}

impl Block {
    fn find(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|(n, _)| n == name)
            .ok_or_else(|| {
                error(
                    ErrorClass::InvalidSavepoint,
                    format!("savepoint \"{name}\" does not exist"),
                )
            })
    }
}

impl State {
    fn open_block(&mut self, statement: &str) -> Result<&mut Block> {
        match &mut self.block {
            None => Err(error(
                ErrorClass::NoActiveTransaction,
                format!("{statement} can only be used in transaction blocks (BEGIN first)"),
            )),
            Some(block) if block.failed => Err(error(
                ErrorClass::InFailedTransaction,
                "current transaction is aborted, commands ignored until end of transaction \
                 block (ROLLBACK, or ROLLBACK TO a savepoint, to go on)",
            )),
            Some(block) => Ok(block),
        }
    }

    fn commit(&mut self, notices: &Notices) -> Result<()> {
        match self.block.take() {
            None => notices.push("WARNING: there is no transaction in progress".into()),
            // PostgreSQL ends a failed block with ROLLBACK whatever the client sends.
            Some(block) if block.failed => self.end(block, true)?,
            Some(block) => self.end(block, false)?,
        }
        Ok(())
    }

    fn rollback(&mut self, notices: &Notices) -> Result<()> {
        match self.block.take() {
            None => notices.push("WARNING: there is no transaction in progress".into()),
            Some(block) => self.end(block, true)?,
        }
        Ok(())
    }

    fn end(&mut self, block: Block, undo: bool) -> Result<()> {
        let result = if undo {
            undo::restore(&self.schema, block.undo)
        } else {
            undo::discard(&self.schema, block.undo);
            Ok(())
        };
        self.schema.store().locks().release(self.owner);
        result
    }

    fn rollback_to(&mut self, name: &str) -> Result<()> {
        let Some(block) = &mut self.block else {
            return Err(error(
                ErrorClass::NoActiveTransaction,
                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks (BEGIN first)",
            ));
        };
        let at = block.find(name)?;
        let since = block.savepoints[at].1;
        block.savepoints.truncate(at + 1);
        block.failed = false;
        let undone = block.undo.split_off(since);
        undo::restore(&self.schema, undone)
    }
}

impl Drop for State {
    /// A session that ends inside a block (client gone, script ended) rolls it back.
    fn drop(&mut self) {
        if let Some(block) = self.block.take()
            && let Err(e) = self.end(block, true)
        {
            eprintln!("warning: rolling back an unfinished transaction failed: {e}");
        }
    }
}

/// The catalog objects `plan` changes when it runs.
pub fn written_objects(plan: &LogicalPlan) -> Vec<ObjectKey> {
    let mut keys = vec![];
    let _ = plan.apply(|node| {
        let key = match node {
            LogicalPlan::Dml(dml) => Some(ObjectKey::Relation(dml.table_name.table().into())),
            LogicalPlan::Ddl(ddl) => match ddl {
                DdlStatement::CreateMemoryTable(c) => {
                    Some(ObjectKey::Relation(c.name.table().into()))
                }
                DdlStatement::CreateView(c) => Some(ObjectKey::Relation(c.name.table().into())),
                DdlStatement::CreateExternalTable(c) => {
                    Some(ObjectKey::Relation(c.name.table().into()))
                }
                DdlStatement::DropTable(d) => Some(ObjectKey::Relation(d.name.table().into())),
                DdlStatement::DropView(d) => Some(ObjectKey::Relation(d.name.table().into())),
                DdlStatement::CreateFunction(c) => Some(ObjectKey::Function(c.name.clone())),
                DdlStatement::DropFunction(d) => Some(ObjectKey::Function(d.name.clone())),
                _ => None,
            },
            _ => None,
        };
        keys.extend(key);
        Ok(TreeNodeRecursion::Continue)
    });
    keys
}
