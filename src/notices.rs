//! Notices a statement leaves for the user (training warnings): the shell prints them on
//! stderr, the wire server sends them as NOTICE messages. Below the session, so operators
//! (TrainExec) can leave one without reaching up into the session.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Notices(Mutex<Vec<String>>);

impl Notices {
    pub fn push(&self, text: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(text);
        }
    }

    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}
