/*
 * The C reference for tokenpipe's benchmarks: what Bitcoin Core's
 * TokenPipeEnd does (blocking write(2) and read(2) of one byte, retried on
 * EINTR), measured in the same scenarios as the Go benchmarks and printed in
 * Go's benchmark format, so that benchstat compares them directly.
 *
 *   pingpong N [scenario...]    runs each scenario (WriteRead,
 *                               RoundTripProcess, MakeClose; all by default)
 *                               N times
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* TokenPipeEnd::TokenWrite: 0 on success, -1 on error, -2 at end of stream. */
static int token_write(int fd, uint8_t token)
{
	for (;;) {
		ssize_t n = write(fd, &token, 1);
		if (n == 1)
			return 0;
		if (n == 0)
			return -2;
		if (errno != EINTR)
			return -1;
	}
}

/* TokenPipeEnd::TokenRead: the token, -1 on error, -2 at end of stream. */
static int token_read(int fd)
{
	uint8_t token;
	for (;;) {
		ssize_t n = read(fd, &token, 1);
		if (n == 1)
			return token;
		if (n == 0)
			return -2;
		if (errno != EINTR)
			return -1;
	}
}

static int make_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC); /* TokenPipe::Make */
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The CPU time, user and system, of this process and of the children it
 * has waited for, in ns. */
static double cpu_ns(void)
{
	double ns = 0;
	int who[] = {RUSAGE_SELF, RUSAGE_CHILDREN};
	for (int i = 0; i < 2; i++) {
		struct rusage ru;
		if (getrusage(who[i], &ru))
			continue;
		ns += (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
		      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
	}
	return ns;
}

/* Prints a result as Go's benchmarks do: the time per operation and, as the
 * Go round trips do, the CPU time per operation (cpu-ns/op). */
static void report(const char *name, long n, double ns, double cpu)
{
	/* -2: the Go benchmarks run with GOMAXPROCS=2 on this machine's 2 cores;
	 * the suffix only has to match theirs for benchstat. */
	printf("Benchmark%s/impl=C-%ld\t%ld\t%.1f ns/op\t%.1f cpu-ns/op\n", name, sysconf(_SC_NPROCESSORS_ONLN), n, ns / n, cpu / n);
	fflush(stdout);
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* One thread writes a token and reads it back. */
static void write_read(long n)
{
	int p[2];
	if (make_pipe(p))
		die("pipe2");
	double start = now_ns(), cpu = cpu_ns();
	for (long i = 0; i < n; i++) {
		if (token_write(p[1], 1) || token_read(p[0]) != 1)
			die("write_read");
	}
	report("WriteRead", n, now_ns() - start, cpu_ns() - cpu);
	close(p[0]);
	close(p[1]);
}

/* A token goes to a child process, which sends it back. */
static void round_trip_process(long n)
{
	int ping[2], pong[2];
	if (make_pipe(ping) || make_pipe(pong))
		die("pipe2");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(ping[1]);
		close(pong[0]);
		for (int tok; (tok = token_read(ping[0])) >= 0;)
			if (token_write(pong[1], tok))
				_exit(1);
		_exit(0);
	}
	close(ping[0]);
	close(pong[1]);
	/* The child's CPU time counts from its fork, as the Go child's counts
	 * from its start. */
	double start = now_ns(), cpu = cpu_ns();
	for (long i = 0; i < n; i++) {
		if (token_write(ping[1], 1) || token_read(pong[0]) != 1)
			die("round_trip_process");
	}
	double ns = now_ns() - start;
	close(ping[1]);
	if (token_read(pong[0]) != -2 || waitpid(pid, NULL, 0) != pid)
		die("child");
	close(pong[0]);
	report("RoundTripProcess", n, ns, cpu_ns() - cpu);
}

/* TokenPipe::Make and closing both ends. */
static void make_close(long n)
{
	double start = now_ns(), cpu = cpu_ns();
	for (long i = 0; i < n; i++) {
		int p[2];
		if (make_pipe(p))
			die("pipe2");
		close(p[0]);
		close(p[1]);
	}
	report("MakeClose", n, now_ns() - start, cpu_ns() - cpu);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(long);
	} scenarios[] = {
		{"WriteRead", write_read},
		{"RoundTripProcess", round_trip_process},
		{"MakeClose", make_close},
	};
	const int count = sizeof scenarios / sizeof scenarios[0];
	long n = argc > 1 ? atol(argv[1]) : 100000;
	if (n <= 0) {
		fprintf(stderr, "usage: %s [iterations [scenario...]]\n", argv[0]);
		return 2;
	}
	for (int a = 2; a < argc; a++) {
		int known = 0;
		for (int i = 0; i < count; i++)
			known |= strcmp(argv[a], scenarios[i].name) == 0;
		if (!known) {
			fprintf(stderr, "%s: no scenario %s\n", argv[0], argv[a]);
			return 2;
		}
	}
	for (int i = 0; i < count; i++) {
		int wanted = argc <= 2;
		for (int a = 2; a < argc; a++)
			wanted |= strcmp(argv[a], scenarios[i].name) == 0;
		if (wanted)
			scenarios[i].run(n);
	}
	return 0;
}
