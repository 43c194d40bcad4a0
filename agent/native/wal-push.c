/*
 * walvault wal-push's fast path without Node (issue 13): archive_command runs
 * once per WAL segment, and starting Node costs ~20-30 ms of CPU per call
 * before any work. When a resident agent (`walvault agent`) runs for the
 * database, the whole call is one request on its Unix socket; this program
 * makes it and exits 0 only when the agent answers that the segment is
 * stored (the answer agent/resident.ts writes: {"ok":true,"result":...}).
 *
 * Anything else -- an option it does not handle, no database id, no agent,
 * a refused or declined request, an error, a malformed answer -- and it
 * execs the Node CLI with the same arguments ($WALVAULT_FALLBACK_NODE
 * $WALVAULT_FALLBACK_CLI, set by bin/walvault), which asks the agent again
 * or pushes by itself and says what went wrong. So this program never
 * decides a failure, and never reports success the agent did not give.
 *
 * Handles: wal-push [--wait stored|none] [--timeout SECONDS]
 *          [--database ID] [--config FILE] PATH
 * The database id and wait timeout come as in agent/locate.ts quickSettings:
 * --database, else $WALVAULT_DATABASE, else the configuration file's
 * top-level "databaseId" ($WALVAULT_CONFIG, else ~/.config/walvault/config.json,
 * else <tmp>/walvault-local/config.json); the timeout from --timeout, else
 * its "waitTimeoutSeconds", else 60. The socket: $WALVAULT_AGENT_SOCKET,
 * else <tmp>/walvault-agent-<id>.sock (<tmp>: $TMPDIR, $TMP, $TEMP, /tmp).
 *
 * Built by `npm run build` and `npm run build:agent` (local/build-native.ts)
 * when a C compiler is there; without it bin/walvault runs Node for every
 * call, as before.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char **saved_argv;

/* Runs the Node CLI with this call's own arguments; returns only if it cannot. */
static int fallback(void) {
  const char *node = getenv("WALVAULT_FALLBACK_NODE");
  const char *cli = getenv("WALVAULT_FALLBACK_CLI");
  if (!node || !cli || !*node || !*cli) {
    fprintf(stderr, "walvault: the fast wal-push path cannot fall back: WALVAULT_FALLBACK_NODE and WALVAULT_FALLBACK_CLI are not set (run it through bin/walvault)\n");
    return 2;
  }
  int n = 0;
  while (saved_argv[n]) n++;
  char **args = calloc((size_t)n + 3, sizeof *args);
  if (!args) return 2;
  args[0] = (char *)node;
  args[1] = (char *)cli;
  for (int i = 1; i < n; i++) args[i + 1] = saved_argv[i];
  execvp(node, args); /* "node" from PATH when the launcher found no other */
  fprintf(stderr, "walvault: cannot run %s: %s\n", node, strerror(errno));
  return 2;
}

static char *read_file(const char *path, size_t limit) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(limit + 1);
  if (!buf) {
    fclose(f);
    return NULL;
  }
  size_t n = fread(buf, 1, limit, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* Node's os.tmpdir() on Linux: $TMPDIR, $TMP, $TEMP, else /tmp, without a trailing slash. */
static void tmp_dir(char *out, size_t size) {
  const char *v = getenv("TMPDIR");
  if (!v || !*v) v = getenv("TMP");
  if (!v || !*v) v = getenv("TEMP");
  if (!v || !*v) v = "/tmp";
  snprintf(out, size, "%s", v);
  size_t len = strlen(out);
  if (len > 1 && out[len - 1] == '/') out[len - 1] = 0;
}

/*
 * The string or number value of a top-level key of a JSON object (depth 1
 * only: a nested "databaseId" is not the configuration's). Strings without
 * escapes only; returns 0 when not found or not simple.
 */
static int top_level_value(const char *json, const char *key, char *out, size_t size) {
  int depth = 0;
  size_t klen = strlen(key);
  for (const char *p = json; *p; p++) {
    if (*p == '"') {
      const char *start = p + 1;
      const char *q = start;
      while (*q && *q != '"') {
        if (*q == '\\' && q[1]) q++;
        q++;
      }
      if (!*q) return 0;
      if (depth == 1 && (size_t)(q - start) == klen && strncmp(start, key, klen) == 0) {
        const char *v = q + 1;
        while (isspace((unsigned char)*v)) v++;
        if (*v != ':') return 0;
        v++;
        while (isspace((unsigned char)*v)) v++;
        if (*v == '"') {
          const char *e = ++v;
          while (*e && *e != '"' && *e != '\\') e++;
          if (*e != '"' || (size_t)(e - v) >= size) return 0;
          memcpy(out, v, (size_t)(e - v));
          out[e - v] = 0;
          return 1;
        }
        const char *e = v;
        while (*e && (isdigit((unsigned char)*e) || *e == '.')) e++;
        if (e == v || (size_t)(e - v) >= size) return 0;
        memcpy(out, v, (size_t)(e - v));
        out[e - v] = 0;
        return 1;
      }
      p = q;
    } else if (*p == '{' || *p == '[') {
      depth++;
    } else if (*p == '}' || *p == ']') {
      depth--;
    }
  }
  return 0;
}

/* Appends s to buf as a JSON string body (quotes, backslashes and control characters escaped). */
static int json_append(char *buf, size_t size, size_t *len, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char tmp[8];
    const char *piece;
    if (*p == '"') piece = "\\\"";
    else if (*p == '\\') piece = "\\\\";
    else if (*p < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", *p);
      piece = tmp;
    } else {
      tmp[0] = (char)*p;
      tmp[1] = 0;
      piece = tmp;
    }
    size_t n = strlen(piece);
    if (*len + n >= size) return 0;
    memcpy(buf + *len, piece, n);
    *len += n;
  }
  buf[*len] = 0;
  return 1;
}

/* core/keys.ts DATABASE_ID_RE: ^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$ */
static int valid_database_id(const char *id) {
  size_t n = strlen(id);
  if (n < 3 || n > 63 || id[0] == '-' || id[n - 1] == '-') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
  }
  return 1;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
  saved_argv = argv;
  if (argc < 2 || strcmp(argv[1], "wal-push") != 0) return fallback();
  const char *wait = "stored", *timeout = NULL, *database = NULL, *config = NULL, *path = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = NULL;
    if (strcmp(a, "--wait") == 0) slot = &wait;
    else if (strcmp(a, "--timeout") == 0) slot = &timeout;
    else if (strcmp(a, "--database") == 0) slot = &database;
    else if (strcmp(a, "--config") == 0) slot = &config;
    else if (a[0] == '-' || path) return fallback(); /* --json, --no-agent, --help, a second path... */
    else path = a;
    if (slot) {
      if (i + 1 >= argc) return fallback();
      *slot = argv[++i];
    }
  }
  if (!path || !*path) return fallback();
  if (strcmp(wait, "stored") != 0 && strcmp(wait, "none") != 0) return fallback();

  /* The configuration file, as agent/locate.ts configCandidates finds it. */
  char cfgpath[8192] = "";
  if (config) snprintf(cfgpath, sizeof cfgpath, "%s", config);
  else if (getenv("WALVAULT_CONFIG")) snprintf(cfgpath, sizeof cfgpath, "%s", getenv("WALVAULT_CONFIG"));
  else {
    const char *home = getenv("HOME");
    char tmp[4096];
    tmp_dir(tmp, sizeof tmp);
    const char *local = getenv("WALVAULT_LOCAL_DIR");
    char c1[8192], c2[8192];
    snprintf(c1, sizeof c1, "%s/.config/walvault/config.json", home ? home : "");
    if (local && *local) snprintf(c2, sizeof c2, "%s/config.json", local);
    else snprintf(c2, sizeof c2, "%s/walvault-local/config.json", tmp);
    if (home && access(c1, F_OK) == 0) snprintf(cfgpath, sizeof cfgpath, "%s", c1);
    else if (access(c2, F_OK) == 0) snprintf(cfgpath, sizeof cfgpath, "%s", c2);
  }
  char *cfg = cfgpath[0] ? read_file(cfgpath, 1 << 20) : NULL;

  char id[128] = "";
  if (database) snprintf(id, sizeof id, "%s", database);
  else if (getenv("WALVAULT_DATABASE") && *getenv("WALVAULT_DATABASE")) snprintf(id, sizeof id, "%s", getenv("WALVAULT_DATABASE"));
  else if (!cfg || !top_level_value(cfg, "databaseId", id, sizeof id)) return fallback();
  if (!valid_database_id(id)) return fallback();

  double seconds = 60;
  char num[64];
  if (timeout) seconds = atof(timeout);
  else if (cfg && top_level_value(cfg, "waitTimeoutSeconds", num, sizeof num) && atof(num) > 0) seconds = atof(num);
  if (!(seconds > 0)) return fallback();
  free(cfg);

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  const char *sock_env = getenv("WALVAULT_AGENT_SOCKET");
  char sock_path[sizeof addr.sun_path + 64];
  if (sock_env && *sock_env) snprintf(sock_path, sizeof sock_path, "%s", sock_env);
  else {
    char tmp[4096];
    tmp_dir(tmp, sizeof tmp);
    if (snprintf(sock_path, sizeof sock_path, "%s/walvault-agent-%s.sock", tmp, id) >= (int)sizeof sock_path) return fallback();
  }
  if (strlen(sock_path) >= sizeof addr.sun_path) return fallback();
  memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);

  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return fallback();
  char abs[8192];
  if (path[0] == '/') snprintf(abs, sizeof abs, "%s", path);
  else if (snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= (int)sizeof abs) return fallback();

  long long timeout_ms = (long long)(seconds * 1000);
  char req[24576];
  size_t len = 0;
  len += (size_t)snprintf(req, sizeof req, "{\"op\":\"push\",\"databaseId\":\"%s\",\"path\":\"", id);
  if (!json_append(req, sizeof req, &len, abs)) return fallback();
  int n = snprintf(req + len, sizeof req - len, "\",\"wait\":\"%s\",\"timeoutMs\":%lld,\"cwd\":\"", wait, timeout_ms);
  if (n < 0 || (size_t)n >= sizeof req - len) return fallback();
  len += (size_t)n;
  if (!json_append(req, sizeof req, &len, cwd)) return fallback();
  if (len + 3 >= sizeof req) return fallback();
  memcpy(req + len, "\"}\n", 4);
  len += 3;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) return fallback();
  for (size_t sent = 0; sent < len;) {
    ssize_t w = write(fd, req + sent, len - sent);
    if (w <= 0) return fallback();
    sent += (size_t)w;
  }

  /* The answer: one line. As push-client.ts, wait up to the timeout and 10 s more. */
  char answer[65536];
  size_t got = 0;
  long long deadline = now_ms() + timeout_ms + 10000;
  while (got < sizeof answer - 1 && !memchr(answer, '\n', got)) {
    long long left = deadline - now_ms();
    if (left <= 0) return fallback();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, left > 2147483647 ? 2147483647 : (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fallback();
    ssize_t k = read(fd, answer + got, sizeof answer - 1 - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  answer[got] = 0;
  static const char ok[] = "{\"ok\":true,\"result\":";
  if (strncmp(answer, ok, sizeof ok - 1) == 0 && memchr(answer, '\n', got)) return 0;
  return fallback();
}
