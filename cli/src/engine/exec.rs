//! Commands run inside a deployment's containers (`docker exec`), for the checks that ask a store or a role
//! something only its own tools answer (`redis-cli INFO`, `comet-server health /metrics`): stores publish no
//! port, so cometctl never reaches them over the network. Several run at once, each cut off after a timeout;
//! the output (stdout and stderr) is returned, never printed, because a store's answer can carry data.

use std::io::{Read, Write};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{Engine, EngineError};
use crate::plan::observed::{ExecOutput, ExecRequest, StreamedExec};

/// At most this much output is kept per command.
const OUTPUT_LIMIT: usize = 1 << 20;

/// At most this much of a streamed command's stderr is kept.
const STDERR_LIMIT: usize = 64 * 1024;

impl Engine {
    /// Runs every request concurrently; each result is the command's exit code and output, or why it could
    /// not run (the container is not running, the program does not exist, the timeout passed).
    pub fn exec_all(&self, requests: &[ExecRequest], timeout: Duration) -> Vec<Result<ExecOutput, EngineError>> {
        self.runtime.block_on(futures::future::join_all(requests.iter().map(|request| async move {
            match tokio::time::timeout(timeout, self.exec(request)).await {
                Ok(result) => result,
                Err(_) => Err(EngineError(format!(
                    "`{}` in container {} did not finish within {} s",
                    request.command.join(" "),
                    request.container,
                    timeout.as_secs()
                ))),
            }
        })))
    }

    /// Runs `command` in `container` and passes its stdout to `out` as it comes (a backup part: nothing of
    /// it is kept in memory); stderr is kept apart, up to 64 KiB. With `input`, what it reads is the
    /// command's stdin, closed at its end (a restore). A failing `out` stops the command's reading.
    pub fn exec_streaming(
        &self,
        container: &str,
        command: &[String],
        input: Option<Box<dyn Read + Send>>,
        out: &mut dyn Write,
    ) -> Result<StreamedExec, EngineError> {
        let what =
            |error: String| EngineError(format!("running `{}` in container {container}: {error}", command.join(" ")));
        self.runtime.block_on(async {
            let options = CreateExecOptions {
                attach_stdin: Some(input.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(command.to_vec()),
                ..Default::default()
            };
            let created = self.docker.create_exec(container, options).await.map_err(|error| what(error.to_string()))?;
            let mut stderr = String::new();
            let mut stdout_bytes = 0u64;
            if let StartExecResults::Attached { output: mut stream, input: mut stdin } =
                self.docker.start_exec(&created.id, None).await.map_err(|error| what(error.to_string()))?
            {
                let feed = async {
                    let Some(input) = input else { return Ok(()) };
                    // The input is read on a blocking thread and handed over in chunks.
                    let (chunks, mut received) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
                    let reader = tokio::task::spawn_blocking(move || {
                        let mut input = input;
                        loop {
                            let mut chunk = vec![0u8; 256 * 1024];
                            match input.read(&mut chunk) {
                                Ok(0) => return,
                                Ok(read) => {
                                    chunk.truncate(read);
                                    if chunks.blocking_send(Ok(chunk)).is_err() {
                                        return;
                                    }
                                }
                                Err(error) => {
                                    let _ = chunks.blocking_send(Err(error));
                                    return;
                                }
                            }
                        }
                    });
                    while let Some(chunk) = received.recv().await {
                        let chunk = chunk.map_err(|error| what(format!("reading its input: {error}")))?;
                        stdin.write_all(&chunk).await.map_err(|error| what(format!("writing its input: {error}")))?;
                    }
                    let _ = reader.await;
                    stdin.shutdown().await.map_err(|error| what(format!("closing its input: {error}")))
                };
                let drain = async {
                    while let Some(chunk) = stream.next().await {
                        match chunk.map_err(|error| what(error.to_string()))? {
                            LogOutput::StdOut { message } => {
                                out.write_all(&message)
                                    .map_err(|error| what(format!("writing its output: {error}")))?;
                                stdout_bytes += message.len() as u64;
                            }
                            LogOutput::StdErr { message } if stderr.len() < STDERR_LIMIT => {
                                stderr.push_str(&String::from_utf8_lossy(&message));
                            }
                            _ => {}
                        }
                    }
                    Ok::<(), EngineError>(())
                };
                let (fed, drained) = tokio::join!(feed, drain);
                drained?;
                fed?;
            }
            let inspected = self.docker.inspect_exec(&created.id).await.map_err(|error| what(error.to_string()))?;
            Ok(StreamedExec { exit_code: inspected.exit_code, stderr, stdout_bytes })
        })
    }

    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, EngineError> {
        let what = |error: bollard::errors::Error| {
            EngineError(format!("running `{}` in container {}: {error}", request.command.join(" "), request.container))
        };
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(request.command.clone()),
            ..Default::default()
        };
        let created = self.docker.create_exec(&request.container, options).await.map_err(what)?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.docker.start_exec(&created.id, None).await.map_err(what)?
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(what)?;
                if output.len() < OUTPUT_LIMIT {
                    output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                }
            }
        }
        let inspected = self.docker.inspect_exec(&created.id).await.map_err(what)?;
        Ok(ExecOutput { exit_code: inspected.exit_code, output })
    }
}
