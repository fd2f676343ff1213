// strongbox-open: decrypts the payload of one age file, in native code (the restore side of
// native/seal.c).
//
// Node checks the file against its signed record (size and SHA-256) before this starts, reads and
// authenticates the header itself and derives the payload key: the identity never leaves Node.
// This program only opens the payload's ChaCha20-Poly1305 STREAM chunks and writes the plaintext
// to stdout (zstd's input, fd to fd: the plaintext never crosses the Node process).
//
//   fd 3    the age file, open for reading; read with pread, so its offset does not matter
//   stdin   8-byte LE payload offset (header + nonce), 8-byte LE file size, 32-byte payload key
//   stdout  the plaintext
//
// Only the recorded size is read, whatever the file holds after it. On any error: one line on
// stderr, "strongbox-open: CODE text" (CODE is an errno name for I/O, or AGE_PAYLOAD_AUTH,
// AGE_TRUNCATED or AGE_TRAILING_DATA like src/crypto/age-stream.ts), exit 1. Plaintext of chunks
// that authenticated before the failure has been written, as `age -d` does.
//
// Usage: strongbox-open (no arguments)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define CHUNK 65536
#define TAG 16
#define ENC (CHUNK + TAG)
#define KEY 32
// Chunks read and opened per pass: about 1 MiB in and out.
#define BATCH 16
#define MAX_COUNTER ((1ULL << 48) - 1)

static void fail(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *code, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  fprintf(stderr, "strongbox-open: %s %s\n", code, text);
  exit(1);
}

static void fail_errno(const char *what, int err) {
  const char *name = strerrorname_np(err);
  fail(name ? name : "EIO", "%s: %s", what, strerror(err));
}

static void read_control(void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(0, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail_errno("read key", errno);
    if (r == 0) fail("EPROTO", "read key: the input ended early");
    got += (size_t)r;
  }
}

static uint64_t le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

static void read_file(unsigned char *buf, size_t n, uint64_t at) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(3, buf + got, n - got, (off_t)(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail_errno("read file", errno);
    // Shorter than recorded: the file changed after its check.
    if (r == 0) fail("AGE_TRUNCATED", "age file is truncated: it ended while being read");
    got += (size_t)r;
  }
}

static void write_out(const unsigned char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = {.fd = 1, .events = POLLOUT};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) fail_errno("write plaintext", errno);
        continue;
      }
      fail_errno("write plaintext", errno);
    }
    buf += w;
    n -= (size_t)w;
  }
}

static EVP_CIPHER_CTX *cipher;

// Opens one sealed chunk (n bytes, tag included) into out; returns 0 when it does not authenticate.
static int open_chunk(const unsigned char *in, size_t n, uint64_t counter, int last, unsigned char *out) {
  unsigned char nonce[12] = {0};
  for (int i = 0; i < 6; i++) nonce[10 - i] = (unsigned char)(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
  int len = 0, fin = 0;
  if (EVP_DecryptInit_ex(cipher, NULL, NULL, NULL, nonce) != 1) fail("EPROTO", "nonce: OpenSSL failed");
  if (EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_AEAD_SET_TAG, TAG, (void *)(in + n - TAG)) != 1)
    fail("EPROTO", "tag: OpenSSL failed");
  if (n > TAG && EVP_DecryptUpdate(cipher, out, &len, in, (int)(n - TAG)) != 1) return 0;
  return EVP_DecryptFinal_ex(cipher, out + len, &fin) == 1;
}

int main(int argc, char **argv) {
  (void)argv;
  // Dies with the Node process that started it (kill -9 included).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  if (argc != 1) {
    fprintf(stderr, "usage: strongbox-open (the key on stdin, the file on fd 3)\n");
    return 2;
  }
  unsigned char control[8 + 8 + KEY];
  read_control(control, sizeof control);
  uint64_t offset = le64(control), size = le64(control + 8);
  cipher = EVP_CIPHER_CTX_new();
  if (!cipher || EVP_DecryptInit_ex(cipher, EVP_chacha20_poly1305(), NULL, control + 16, NULL) != 1)
    fail("EPROTO", "key: OpenSSL failed");
  OPENSSL_cleanse(control, sizeof control);
  if (offset > size) fail("AGE_TRUNCATED", "age file is truncated: it ends before the payload nonce");
  uint64_t payload = size - offset;
  if (payload == 0) fail("AGE_TRUNCATED", "age file is truncated: the payload has no chunks");
  uint64_t chunks = (payload + ENC - 1) / ENC;
  uint64_t tail = payload - (chunks - 1) * ENC;
  // A tail too short for a tag: the whole chunks before it are still opened (and released, like
  // age -d and Node's decryptor do) before the file is reported cut.
  int short_tail = tail < TAG;
  uint64_t whole = short_tail ? chunks - 1 : chunks;
  if (chunks - 1 > MAX_COUNTER) fail("AGE_TRUNCATED", "age payload exceeds 2^48 chunks");
  posix_fadvise(3, (off_t)offset, (off_t)payload, POSIX_FADV_SEQUENTIAL);

  unsigned char *in = malloc((size_t)BATCH * ENC), *out = malloc((size_t)BATCH * CHUNK);
  if (!in || !out) fail_errno("allocate", ENOMEM);
  uint64_t counter = 0, at = offset;
  while (counter < whole) {
    uint64_t k = whole - counter < BATCH ? whole - counter : BATCH;
    size_t n = (size_t)((k - 1) * ENC + (counter + k == chunks ? tail : ENC));
    read_file(in, n, at);
    size_t produced = 0;
    for (uint64_t i = 0; i < k; i++, counter++) {
      int last = counter == chunks - 1;  // never true with a short tail
      size_t len = last ? (size_t)tail : ENC;
      const unsigned char *c = in + i * ENC;
      if (!open_chunk(c, len, counter, last, out + produced)) {
        write_out(out, produced);
        if (!last && open_chunk(c, len, counter, 1, out + produced)) {
          // Authentic as the final chunk, so released like age -d does; only what follows is wrong.
          write_out(out + produced, len - TAG);
          fail("AGE_TRAILING_DATA", "age file has data after its final chunk (chunk %llu)", (unsigned long long)counter);
        }
        if (last && len == ENC && open_chunk(c, len, counter, 0, out + produced)) {
          write_out(out + produced, CHUNK);
          fail("AGE_TRUNCATED", "age file is truncated: it ends after %llu chunks, without the final chunk",
               (unsigned long long)chunks);
        }
        fail("AGE_PAYLOAD_AUTH", "age payload chunk %llu failed authentication: the file is corrupted",
             (unsigned long long)counter);
      }
      if (last && len == TAG && counter > 0) {
        write_out(out, produced);
        fail("AGE_PAYLOAD_AUTH", "age payload ends with an empty final chunk, which is only allowed for an empty payload");
      }
      produced += len - TAG;
    }
    write_out(out, produced);
    at += n;
  }
  if (short_tail)
    fail("AGE_TRUNCATED", "age file is truncated: it ends inside payload chunk %llu", (unsigned long long)(chunks - 1));
  return 0;
}
