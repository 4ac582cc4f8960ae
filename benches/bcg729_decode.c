/* Reference timing for benches/g729_merge.rs: decode one raw G.729 half
 * (10-byte frames back to back) with Debian's libbcg729 and report the time
 * spent decoding. Usage: bcg729_decode IN.dat [OUT.pcm]
 * Prints "frames=<n> decode_secs=<wall s> cpu_secs=<s> checksum=<n>" on stdout. OUT (s16le) lets the bench
 * check that g729-sys and the system bcg729 agree sample for sample. */
#include <bcg729/decoder.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s IN.dat [OUT.pcm]\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = argc > 2 ? fopen(argv[2], "wb") : NULL;
    if (!in || (argc > 2 && !out)) {
        perror("open");
        return 1;
    }
    bcg729DecoderChannelContextStruct *dec = initBcg729DecoderChannel();
    uint8_t frame[10];
    int16_t pcm[80];
    long frames = 0;
    int64_t checksum = 0; /* keeps the decode from being optimised away */
    struct timespec t0, t1;
    clock_t c0 = clock();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (fread(frame, 1, sizeof frame, in) == sizeof frame) {
        bcg729Decoder(dec, frame, sizeof frame, 0, 0, 0, pcm);
        for (int i = 0; i < 80; i++) checksum += pcm[i];
        if (out) fwrite(pcm, sizeof pcm[0], 80, out);
        frames++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    closeBcg729DecoderChannel(dec);
    fclose(in);
    if (out) fclose(out);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("frames=%ld decode_secs=%.6f cpu_secs=%.6f checksum=%lld\n", frames, secs, cpu,
           (long long)checksum);
    return 0;
}
