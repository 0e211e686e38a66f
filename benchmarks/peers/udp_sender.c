/* Paced UDP sender for benchmarks.ingest_rate: replays pre-built datagrams at a fixed rate.
 * usage: udp_sender HOST PORT DATAGRAM_FILE DATAGRAMS_PER_S SECONDS
 * DATAGRAM_FILE: records of <u16 little-endian length><payload>, replayed round-robin.
 * Prints "sent <datagrams>" and exits. Uses sendmmsg on a connected socket: one syscall per
 * burst of up to 64 datagrams, so the sender is never the bottleneck. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BURST 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT FILE RATE SECONDS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror("open"); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(size);
    if (fread(data, 1, size, f) != (size_t)size) { perror("read"); return 1; }
    fclose(f);
    size_t count = 0, cap = 1024;
    struct iovec *iov = malloc(cap * sizeof *iov);
    for (long off = 0; off + 2 <= size;) {
        uint16_t len = data[off] | (data[off + 1] << 8);
        if (count == cap) { cap *= 2; iov = realloc(iov, cap * sizeof *iov); }
        iov[count].iov_base = data + off + 2;
        iov[count].iov_len = len;
        count++;
        off += 2 + len;
    }
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    struct mmsghdr msgs[BURST];
    memset(msgs, 0, sizeof msgs);
    unsigned long long sent = 0;
    size_t next = 0;
    double start = now_s();
    for (;;) {
        double elapsed = now_s() - start;
        if (elapsed >= seconds) break;
        unsigned long long due = (unsigned long long)(rate * elapsed);
        if (due <= sent) {
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
            continue;
        }
        unsigned long long n = due - sent;
        if (n > BURST) n = BURST;
        for (unsigned i = 0; i < n; i++) {
            msgs[i].msg_hdr.msg_iov = &iov[(next + i) % count];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int done = sendmmsg(sock, msgs, n, 0);
        if (done < 0) { perror("sendmmsg"); return 1; }
        next = (next + done) % count; /* file order kept: the receiver's totals are computable */
        sent += done;
    }
    printf("sent %llu\n", sent);
    return 0;
}
