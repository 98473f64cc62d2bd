//! Password verification off the async workers: bcrypt takes milliseconds
//! to a second of CPU, and on a tokio worker it stalls every connection that
//! worker serves (health checks included). Verifications run on the
//! blocking pool, at most one per CPU at a time; callers wait for a slot
//! asynchronously. Recently verified credentials skip bcrypt altogether.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::htpasswd::Htpasswd;

pub struct PasswordCheck {
    slots: Semaphore,
}

impl Default for PasswordCheck {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordCheck::new(cpus)
    }
}

impl PasswordCheck {
    pub fn new(concurrency: usize) -> Self {
        PasswordCheck { slots: Semaphore::new(concurrency.max(1)) }
    }

    /// True when `password` is `user`'s password in `users`.
    pub async fn verify(&self, users: Arc<Htpasswd>, user: &str, password: &str) -> bool {
        if users.recently_verified(user, password) {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else { return false };
        let (user, password) = (user.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || users.verify(&user, &password)).await.unwrap_or(false)
    }
}
