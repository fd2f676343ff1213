// strongbox-seal: the part writer of a backup to a local repository, in native code.
//
// It reads the compressed backup stream on stdin (zstd's stdout, fd to fd: the stream never
// crosses the Node process), cuts it into parts of PART_SIZE bytes, and writes each part as an
// age v1 file: the header that Node made, then the payload sealed with ChaCha20-Poly1305 in
// 64 KiB STREAM chunks. It hashes the stored bytes (SHA-256) as it writes them.
//
// Node keeps every secret decision: for each part it sends, on fd 3, the temp path to create,
// the age header (with its 16-byte payload nonce) and the payload key it derived from a fresh
// file key. Nothing secret is on the command line. For each part written and synced, a line
// "part INDEX PLAIN_BYTES STORED_BYTES SHA256" goes to stdout; Node renames the temp file into
// place. On any error: one line on stderr ("strongbox-seal: ERRNO-NAME what: text"), the
// current temp file removed, exit 1.
//
// With --frames (a node's agent, src/agent/backup.ts) no file is written: each part goes to stdout
// as the agent protocol's frames (src/protocol/frames.ts: partStart {"index"}, data frames of
// sealed bytes, partEnd {"index","plainSize"}), straight into the SSH channel, and the report
// lines go to fd 4. The path in each key record is then ignored. A frame is always written whole
// unless stdout itself fails (the backup host is gone).
//
// Usage: strongbox-seal PART_SIZE [--no-sync] [--frames]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define CHUNK 65536
#define TAG 16
#define KEY 32
#define ALIGN 4096
// Staged output, written to the disk 1 MiB at a time (a multiple of ALIGN).
#define STAGE (1024 * 1024)
#define MAX_PREFIX (64 * 1024)
#define MAX_PATH_LEN 4096
#define MAX_COUNTER ((1ULL << 48) - 1)
// --frames: sealed bytes go out as data frames of about this size (the peer takes up to 4 MiB).
#define FRAME_DATA (256 * 1024)
// The agent protocol's frame types (src/protocol/frames.ts).
#define FRAME_PART_START 3
#define FRAME_DATA_TYPE 4
#define FRAME_PART_END 5

static const char *current_path;
static int current_fd = -1;

static void fail(const char *what, int err) {
  const char *name = err ? strerrorname_np(err) : NULL;
  fprintf(stderr, "strongbox-seal: %s %s%s%s\n", name ? name : "EIO", what, err ? ": " : "",
          err ? strerror(err) : "");
  if (current_fd >= 0) close(current_fd);
  if (current_path) unlink(current_path);
  exit(1);
}

static void fail_crypto(const char *what) {
  fprintf(stderr, "strongbox-seal: EPROTO %s: OpenSSL failed\n", what);
  if (current_fd >= 0) close(current_fd);
  if (current_path) unlink(current_path);
  exit(1);
}

// Reads exactly n bytes; returns 0 at a clean end of input before the first byte.
static int read_full(int fd, void *buf, size_t n, const char *what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(what, errno);
    }
    if (r == 0) {
      if (got == 0) return 0;
      fail(what, EPIPE);
    }
    got += (size_t)r;
  }
  return 1;
}

static void write_full(int fd, const unsigned char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // Node's stdout (shared with it under --frames) is non-blocking: wait until it takes more.
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) fail("write part", errno);
        continue;
      }
      fail("write part", errno);
    }
    if (w == 0) fail("write part", EIO);
    buf += w;
    n -= (size_t)w;
  }
}

struct part {
  unsigned index;
  char path[MAX_PATH_LEN + 1];
  unsigned char prefix[MAX_PREFIX];
  uint32_t prefix_len;
  unsigned char key[KEY];
  int fd;
  int direct;
  uint64_t plain;
  uint64_t stored;
  uint64_t counter;
  size_t staged;
};

static unsigned char *stage;  // STAGE + one sealed chunk, ALIGN-aligned
// Two input chunks: a full chunk is sealed only once more input has arrived, because the last
// chunk of a part (even a full one) carries the last-chunk flag.
static unsigned char chunks[2][CHUNK];
static EVP_CIPHER_CTX *cipher;
static EVP_MD_CTX *digest;
static int sync_files = 1;
static int frames = 0;
// Where the "part …" report lines go: stdout, or fd 4 when stdout carries frames.
static int report_fd = 1;

static void write_frame(unsigned type, const unsigned char *payload, size_t n) {
  unsigned char head[5] = {(unsigned char)type, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                           (unsigned char)(n >> 8), (unsigned char)n};
  write_full(1, head, sizeof head);
  if (n > 0) write_full(1, payload, n);
}

static void write_json_frame(unsigned type, const char *json) {
  write_frame(type, (const unsigned char *)json, strlen(json));
}

static void read_u32(uint32_t *v) {
  unsigned char b[4];
  if (!read_full(3, b, 4, "read part keys")) fail("read part keys", EPIPE);
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void buffered(struct part *p) {
  int flags = fcntl(p->fd, F_GETFL);
  if (flags < 0 || fcntl(p->fd, F_SETFL, flags & ~O_DIRECT) < 0) fail("fcntl part", errno);
  p->direct = 0;
}

// Writes n staged bytes (whole blocks while direct). A filesystem that took O_DIRECT at open()
// but refuses the write gets the bytes buffered.
static void write_stage(struct part *p, const unsigned char *buf, size_t n) {
  if (n == 0) return;
  ssize_t w;
  do w = write(p->fd, buf, n);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno == EINVAL && p->direct) {
    buffered(p);
    w = 0;
  } else if (w < 0) {
    fail("write part", errno);
  }
  write_full(p->fd, buf + w, n - (size_t)w);
}

// Writes the aligned front of the stage (all of it when `all`), keeping the rest staged.
static void flush_stage(struct part *p, int all) {
  if (frames) {
    if (p->staged > 0 && (all || p->staged >= FRAME_DATA)) {
      write_frame(FRAME_DATA_TYPE, stage, p->staged);
      p->staged = 0;
    }
    return;
  }
  size_t n = p->direct && !all ? p->staged / ALIGN * ALIGN : p->staged;
  if (p->direct && n % ALIGN != 0) {
    // The tail of a file is not a whole block: the aligned front goes direct, the rest buffered.
    size_t front = n / ALIGN * ALIGN;
    write_stage(p, stage, front);
    if (p->direct) buffered(p);
    write_full(p->fd, stage + front, n - front);
  } else {
    write_stage(p, stage, n);
  }
  memmove(stage, stage + n, p->staged - n);
  p->staged -= n;
}

static void stage_bytes(struct part *p, const unsigned char *b, size_t n) {
  if (EVP_DigestUpdate(digest, b, n) != 1) fail_crypto("hash");
  memcpy(stage + p->staged, b, n);
  p->staged += n;
  p->stored += n;
}

static int open_part(struct part *p, unsigned index) {
  uint32_t path_len;
  read_u32(&path_len);
  if (path_len == 0 || path_len > MAX_PATH_LEN) fail("read part keys: bad path length", EPROTO);
  read_full(3, p->path, path_len, "read part keys");
  p->path[path_len] = 0;
  read_u32(&p->prefix_len);
  if (p->prefix_len == 0 || p->prefix_len > MAX_PREFIX) fail("read part keys: bad header length", EPROTO);
  read_full(3, p->prefix, p->prefix_len, "read part keys");
  read_full(3, p->key, KEY, "read part keys");
  p->index = index;
  p->plain = p->stored = p->counter = 0;
  p->staged = 0;
  current_path = NULL;
  if (frames) {
    char json[64];
    snprintf(json, sizeof json, "{\"index\":%u}", index);
    write_json_frame(FRAME_PART_START, json);
    p->fd = -1;
    p->direct = 0;
  } else {
    p->fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
    p->direct = 1;
    if (p->fd < 0 && errno == EINVAL) {
      // Linux creates the file before it finds that the filesystem refuses O_DIRECT.
      unlink(p->path);
      p->fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      p->direct = 0;
    }
    if (p->fd < 0) fail("create part", errno);
    current_path = p->path;
    current_fd = p->fd;
  }
  if (EVP_EncryptInit_ex(cipher, EVP_chacha20_poly1305(), NULL, p->key, NULL) != 1) fail_crypto("key");
  OPENSSL_cleanse(p->key, KEY);
  if (EVP_DigestInit_ex(digest, EVP_sha256(), NULL) != 1) fail_crypto("hash");
  stage_bytes(p, p->prefix, p->prefix_len);
  return 1;
}

// Seals `held` input bytes as the next STREAM chunk; `last` sets the last-chunk flag of the nonce.
static void seal(struct part *p, const unsigned char *in, size_t held, int last) {
  if (p->counter > MAX_COUNTER) fail("seal: age payload exceeds 2^48 chunks", EFBIG);
  unsigned char nonce[12] = {0};
  for (int i = 0; i < 6; i++) nonce[10 - i] = (unsigned char)(p->counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
  p->counter++;
  if (EVP_EncryptInit_ex(cipher, NULL, NULL, NULL, nonce) != 1) fail_crypto("nonce");
  unsigned char *out = stage + p->staged;
  int len = 0, fin = 0;
  if (held > 0 && EVP_EncryptUpdate(cipher, out, &len, in, (int)held) != 1) fail_crypto("seal");
  if (EVP_EncryptFinal_ex(cipher, out + len, &fin) != 1) fail_crypto("seal");
  if (EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_AEAD_GET_TAG, TAG, out + held) != 1) fail_crypto("tag");
  size_t n = held + TAG;
  if (EVP_DigestUpdate(digest, out, n) != 1) fail_crypto("hash");
  p->staged += n;
  p->stored += n;
  if (p->staged >= (frames ? FRAME_DATA : STAGE)) flush_stage(p, 0);
}

static void close_part(struct part *p, const unsigned char *in, size_t held) {
  seal(p, in, held, 1);
  flush_stage(p, 1);
  if (frames) {
    char json[96];
    snprintf(json, sizeof json, "{\"index\":%u,\"plainSize\":%llu}", p->index,
             (unsigned long long)p->plain);
    write_json_frame(FRAME_PART_END, json);
  } else {
    if (sync_files && fdatasync(p->fd) < 0) fail("sync part", errno);
    if (close(p->fd) < 0) fail("close part", errno);
  }
  current_fd = -1;
  current_path = NULL;
  unsigned char md[32];
  if (EVP_DigestFinal_ex(digest, md, NULL) != 1) fail_crypto("hash");
  char line[256];
  int n = snprintf(line, sizeof line, "part %u %llu %llu ", p->index, (unsigned long long)p->plain,
                   (unsigned long long)p->stored);
  for (int i = 0; i < 32; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%02x", md[i]);
  line[n++] = '\n';
  const char *b = line;
  while (n > 0) {
    ssize_t w = write(report_fd, b, (size_t)n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("report part", errno);
    b += w;
    n -= (int)w;
  }
}

int main(int argc, char **argv) {
  // Dies with the Node process that feeds it (kill -9 included): no orphan keeps writing.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fprintf(stderr, "usage: strongbox-seal PART_SIZE [--no-sync] [--frames]\n");
    return 2;
  }
  char *end;
  unsigned long long part_size = strtoull(argv[1], &end, 10);
  if (*end || part_size == 0) {
    fprintf(stderr, "strongbox-seal: EINVAL part size: not a positive integer\n");
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--no-sync") == 0) {
      sync_files = 0;
    } else if (strcmp(argv[i], "--frames") == 0) {
      frames = 1;
      report_fd = 4;
    } else {
      fprintf(stderr, "strongbox-seal: EINVAL unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (posix_memalign((void **)&stage, ALIGN, STAGE + CHUNK + TAG + ALIGN) != 0) fail("allocate", ENOMEM);
  cipher = EVP_CIPHER_CTX_new();
  digest = EVP_MD_CTX_new();
  if (!cipher || !digest) fail_crypto("init");
  // A bigger pipe from zstd means fewer, larger reads (best effort: stdin may be a socket).
  fcntl(0, F_SETPIPE_SZ, 1024 * 1024);

  static struct part p;
  unsigned next = 0;
  int have_part = 0;
  int cur = 0;  // chunks[cur] holds `held` bytes of the part's current chunk
  size_t held = 0;
  for (;;) {
    uint64_t room = part_size - (have_part ? p.plain : 0);
    unsigned char *dst = held == CHUNK ? chunks[1 - cur] : chunks[cur] + held;
    size_t want = held == CHUNK ? CHUNK : CHUNK - held;
    if (want > room) want = (size_t)room;
    ssize_t r = read(0, dst, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("read stream", errno);
    }
    if (r == 0) break;
    if (!have_part) have_part = open_part(&p, next++);
    if (held == CHUNK) {
      seal(&p, chunks[cur], CHUNK, 0);
      cur = 1 - cur;
      held = (size_t)r;
    } else {
      held += (size_t)r;
    }
    p.plain += (uint64_t)r;
    if (p.plain == part_size) {
      close_part(&p, chunks[cur], held);
      have_part = 0;
      held = 0;
    }
  }
  // An empty stream still gets one (empty) part, so every backup has at least one object.
  if (have_part || next == 0) {
    if (!have_part) open_part(&p, next++);
    close_part(&p, chunks[cur], held);
  }
  return 0;
}
