//! [`Spool`]: bytes written whole before they are read back, so that
//! reading them from the database never waits for whoever takes them (a
//! client downloading an export, a fork's staging). It stays in memory up
//! to [`IN_MEMORY`] bytes, then goes on in an unnamed temporary file (in
//! `TMPDIR`), gone when the reader is.

use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt};

use crate::error::Error;

/// The bytes a spool keeps in memory before it moves to a file.
const IN_MEMORY: usize = 1024 * 1024;

#[derive(Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<tokio::fs::File>,
    /// Bytes moved to the file.
    on_file: u64,
}

impl Spool {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.memory.extend_from_slice(bytes);
        self.flush_if_full().await
    }

    /// Writes `value` as JSON.
    pub async fn write_json(&mut self, value: &impl serde::Serialize) -> Result<(), Error> {
        serde_json::to_writer(&mut self.memory, value).map_err(|e| {
            tracing::error!(error = %e, "a stored document does not serialize");
            Error::Internal
        })?;
        self.flush_if_full().await
    }

    /// The bytes written so far.
    pub fn len(&self) -> u64 {
        self.on_file + self.memory.len() as u64
    }

    async fn flush_if_full(&mut self) -> Result<(), Error> {
        if self.memory.len() >= IN_MEMORY {
            self.flush().await?;
        }
        Ok(())
    }

    /// Moves what is in memory to the file (made on first use).
    async fn flush(&mut self) -> Result<(), Error> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = tokio::task::spawn_blocking(tempfile::tempfile)
                    .await
                    .map_err(|_| Error::Internal)?
                    .map_err(unspoolable)?;
                self.file.insert(tokio::fs::File::from_std(file))
            }
        };
        file.write_all(&self.memory).await.map_err(unspoolable)?;
        self.on_file += self.memory.len() as u64;
        self.memory.clear();
        Ok(())
    }

    /// What was written, from the start.
    pub async fn into_reader(mut self) -> Result<Box<dyn AsyncRead + Send + Unpin>, Error> {
        let Some(mut file) = self.file.take() else { return Ok(Box::new(std::io::Cursor::new(self.memory))) };
        file.write_all(&self.memory).await.map_err(unspoolable)?;
        file.flush().await.map_err(unspoolable)?;
        file.rewind().await.map_err(unspoolable)?;
        Ok(Box::new(file))
    }
}

fn unspoolable(e: std::io::Error) -> Error {
    tracing::warn!(error = %e, "cannot write a temporary file");
    Error::Unavailable(format!(
        "a temporary file cannot be written ({e}); the server needs a writable TMPDIR"
    ))
}
