//! A server task for one test: stopped gracefully by the test, aborted on drop when
//! the test fails first.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server task.
pub struct Background<E> {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Debug + Send + 'static> Background<E> {
    /// Spawns `serve`, handing it the future that resolves when the test asks it to stop.
    pub fn spawn<F, S>(serve: S) -> Self
    where
        S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async {
            let _ = stopped.await;
        })));
        Self {
            shutdown: Some(shutdown),
            task,
        }
    }

    /// Shuts the server down gracefully and checks it stopped cleanly.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().expect("stopped once").send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task did not panic")
            .expect("the server ran without error");
    }
}

impl<E> Drop for Background<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
