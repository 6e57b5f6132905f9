/*
 * DuckDB's jaro_winkler_similarity(s1, s2) as a Spark SQL UDF (satudata's Spark engine, docs/spark.md).
 *
 * A line-for-line port of the Jaro / Jaro-Winkler code DuckDB ships in third_party/jaro_winkler
 * (details/jaro_impl.hpp, details/common.hpp: Max Bachmann's rapidfuzz jaro_winkler, MIT), called
 * as DuckDB's two-argument function calls it: prefix weight 0.1, score_cutoff 0. So, as in DuckDB:
 *   - the strings are compared as sequences of Unicode code points, as DuckDB 2.0 compares them
 *     (measured on 2.0.1: 'JOSÉ' vs 'JOSE' is 0.8833, É one code point; the third_party source of
 *     the 1.5 line hands the algorithm the UTF-8 bytes instead); a combining accent is a code point
 *     of its own, no normalisation;
 *   - NULL in either argument gives NULL; an empty string against anything gives 0.0 (also '' vs '');
 *   - two one-code-point strings give 1.0 or 0.0;
 *   - the window is max(len) / 2 - 1 (integer division), matching is greedy from the second string's
 *     side (lowest free position of the first string in the window), half the transpositions is an
 *     integer division (commons-text, Splink's jaro_winkler on Spark, halves as a double: the
 *     cause of the engines' differing values), Winkler's boost (common prefix up to 4 code points,
 *     weight 0.1) is applied when Jaro > 0.7;
 *   - strings longer than 64 code points (after the common prefix) take the multi-word path.
 * Java doubles are IEEE binary64 and every operation is done in DuckDB's order, with the Winkler
 * boost as one fused multiply-add as DuckDB 2.0.1 computes it: the values are the same doubles
 * (bit for bit on the pairs of satudata_pipeline_tests/test_spark_jaro_winkler.py).
 *
 * Built by ./scripts/setup.sh --spark into .venv/share/satudata/satudata-udf.jar and registered as
 * `jaro_winkler` by satudata_pipeline/link/spark_engine.py (replacing Splink's).
 */
package satudata.udf;

import java.util.HashMap;
import org.apache.spark.sql.api.java.UDF2;

public final class DuckDBJaroWinkler implements UDF2<String, String, Double> {
    private static final long serialVersionUID = 1L;

    /** DuckDB's jaro_winkler_similarity(s1, s2): prefix weight 0.1, score_cutoff 0. */
    @Override
    public Double call(String s1, String s2) {
        if (s1 == null || s2 == null) {
            return null;
        }
        return similarity(codePoints(s1), codePoints(s2));
    }

    public static double similarity(int[] s1, int[] s2) {
        return jaroWinklerSimilarity(s1, s2, 0.1, 0.0);
    }

    static int[] codePoints(String s) {
        int len = s.length();
        int[] out = new int[s.codePointCount(0, len)];
        for (int i = 0, k = 0; i < len; k++) {
            int cp = s.codePointAt(i);
            out[k] = cp;
            i += Character.charCount(cp);
        }
        return out;
    }

    // ---------------------------------------------------------------------------------------------
    // details/jaro_impl.hpp. P is the first string, T the second; a view is [start, end) of its array.

    /**
     * common::PatternMatchVector: the positions (bits) of each code point in a view of <= 64 code
     * points; a table for code points below 256, a short list for the others. One per thread, reused.
     */
    static final class WordPM {
        final long[] extendedAscii = new long[256];
        final int[] keys = new int[64];
        final long[] masks = new long[64];
        int others;

        void insert(int key, long mask) {
            if (key >= 0 && key <= 255) {
                extendedAscii[key] |= mask;
                return;
            }
            for (int k = 0; k < others; ++k) {
                if (keys[k] == key) {
                    masks[k] |= mask;
                    return;
                }
            }
            keys[others] = key;
            masks[others++] = mask;
        }

        long get(int key) {
            if (key >= 0 && key <= 255) {
                return extendedAscii[key];
            }
            for (int k = 0; k < others; ++k) {
                if (keys[k] == key) {
                    return masks[k];
                }
            }
            return 0;
        }

        void clear(int[] s, int start, int end) {
            for (int i = start; i < end; ++i) {
                if (s[i] >= 0 && s[i] <= 255) {
                    extendedAscii[s[i]] = 0;
                }
            }
            others = 0;
        }
    }

    private static final ThreadLocal<WordPM> WORD_PM = ThreadLocal.withInitial(WordPM::new);

    static double jaroCalculateSimilarity(long pLen, long tLen, long commonChars, long transpositions) {
        transpositions /= 2;
        double sim = 0;
        sim += (double) commonChars / (double) pLen;
        sim += (double) commonChars / (double) tLen;
        sim += ((double) commonChars - (double) transpositions) / (double) commonChars;
        return sim / 3.0;
    }

    static boolean jaroLengthFilter(long pLen, long tLen, double scoreCutoff) {
        if (tLen == 0 || pLen == 0) {
            return false;
        }
        double minLen = (double) Math.min(pLen, tLen);
        double sim = minLen / (double) pLen + minLen / (double) tLen + 1.0;
        sim /= 3.0;
        return sim >= scoreCutoff;
    }

    static boolean jaroCommonCharFilter(long pLen, long tLen, long commonChars, double scoreCutoff) {
        if (commonChars == 0) {
            return false;
        }
        double sim = 0;
        sim += (double) commonChars / (double) pLen;
        sim += (double) commonChars / (double) tLen;
        sim += 1.0;
        sim /= 3.0;
        return sim >= scoreCutoff;
    }

    static double resultCutoff(double result, double scoreCutoff) {
        return result >= scoreCutoff ? result : 0;
    }

    /** intrinsics::bit_mask_lsb<uint64_t>(n): the n lowest bits set (all 64 when n >= 64). */
    static long bitMaskLsb(int n) {
        long mask = -1L;
        if (n < 64) {
            mask += 1L << n;
        }
        return mask;
    }

    static double jaroSimilarity(int[] p, int[] t, double scoreCutoff) {
        int pLen = p.length;
        int tLen = t.length;

        if (!jaroLengthFilter(pLen, tLen, scoreCutoff)) {
            return 0.0;
        }
        if (pLen == 1 && tLen == 1) {
            return p[0] == t[0] ? 1.0 : 0.0;
        }

        // jaro_bounds: the part of the longer string no window reaches is dropped
        int pEnd = pLen;
        int tEnd = tLen;
        int bound;
        if (tLen > pLen) {
            bound = tLen / 2 - 1;
            if (tLen > pLen + bound) {
                tEnd = pLen + bound;
            }
        } else {
            bound = pLen / 2 - 1;
            if (pLen > tLen + bound) {
                pEnd = tLen + bound;
            }
        }

        // remove_common_prefix: the common prefix never includes transpositions
        int prefix = 0;
        int maxComparisons = Math.min(pEnd, tEnd);
        while (prefix < maxComparisons && p[prefix] == t[prefix]) {
            prefix++;
        }
        int pStart = prefix;
        int tStart = prefix;
        long commonChars = prefix;
        long transpositions = 0;
        int pViewLen = pEnd - pStart;
        int tViewLen = tEnd - tStart;

        if (pViewLen == 0 || tViewLen == 0) {
            // already has the correct number of common chars and transpositions
        } else if (pViewLen <= 64 && tViewLen <= 64) {
            WordPM pm = WORD_PM.get();
            try {
                long mask = 1;
                for (int i = pStart; i < pEnd; ++i) {
                    pm.insert(p[i], mask);
                    mask <<= 1;
                }
                // flag_similar_characters_word
                long pFlag = 0;
                long tFlag = 0;
                long boundMask = bitMaskLsb(bound + 1);
                int j = 0;
                int firstLoop = Math.min(bound, tViewLen);
                for (; j < firstLoop; ++j) {
                    long pmJ = pm.get(t[tStart + j]) & boundMask & ~pFlag;
                    pFlag |= pmJ & -pmJ;
                    tFlag |= (pmJ != 0 ? 1L : 0L) << j;
                    boundMask = (boundMask << 1) | 1;
                }
                for (; j < tViewLen; ++j) {
                    long pmJ = pm.get(t[tStart + j]) & boundMask & ~pFlag;
                    pFlag |= pmJ & -pmJ;
                    tFlag |= (pmJ != 0 ? 1L : 0L) << j;
                    boundMask <<= 1;
                }
                commonChars += Long.bitCount(pFlag);

                if (!jaroCommonCharFilter(pLen, tLen, commonChars, scoreCutoff)) {
                    return 0.0;
                }

                // count_transpositions_word
                while (tFlag != 0) {
                    long patternFlagMask = pFlag & -pFlag;
                    if ((pm.get(t[tStart + Long.numberOfTrailingZeros(tFlag)]) & patternFlagMask)
                            == 0) {
                        transpositions++;
                    }
                    tFlag &= tFlag - 1;
                    pFlag ^= patternFlagMask;
                }
            } finally {
                pm.clear(p, pStart, pEnd);
            }
        } else {
            BlockPM pm = new BlockPM(p, pStart, pEnd);
            long[][] flagged = flagSimilarCharactersBlock(pm, pViewLen, t, tStart, tViewLen, bound);
            long[] pFlags = flagged[0];
            long[] tFlags = flagged[1];
            long flaggedChars = 0;
            for (long flag : (pFlags.length < tFlags.length ? pFlags : tFlags)) {
                flaggedChars += Long.bitCount(flag);
            }
            commonChars += flaggedChars;

            if (!jaroCommonCharFilter(pLen, tLen, commonChars, scoreCutoff)) {
                return 0.0;
            }

            transpositions = countTranspositionsBlock(pm, t, tStart, pFlags, tFlags, flaggedChars);
        }

        double sim = jaroCalculateSimilarity(pLen, tLen, commonChars, transpositions);
        return resultCutoff(sim, scoreCutoff);
    }

    static double jaroWinklerSimilarity(int[] p, int[] t, double prefixWeight, double scoreCutoff) {
        int pLen = p.length;
        int tLen = t.length;
        int minLen = Math.min(pLen, tLen);
        int prefix = 0;
        int maxPrefix = Math.min(minLen, 4);

        for (; prefix < maxPrefix; ++prefix) {
            if (t[prefix] != p[prefix]) {
                break;
            }
        }

        double jaroScoreCutoff = scoreCutoff;
        if (jaroScoreCutoff > 0.7) {
            double prefixSim = (double) prefix * prefixWeight;
            if (prefixSim >= 1.0) {
                jaroScoreCutoff = 0.7;
            } else {
                jaroScoreCutoff = Math.max(0.7, (prefixSim - jaroScoreCutoff) / (prefixSim - 1.0));
            }
        }

        double sim = jaroSimilarity(p, t, jaroScoreCutoff);
        if (sim > 0.7 && prefix > 0) {
            // Sim += prefix * prefix_weight * (1.0 - Sim): DuckDB 2.0.1's build fuses the multiply-add
            // (one rounding; measured: the plain two-rounding form is 1 ulp off on ~1% of pairs).
            // With prefix 0 the boost adds exactly 0.
            sim = Math.fma((double) prefix * prefixWeight, 1.0 - sim, sim);
        }
        return resultCutoff(sim, scoreCutoff);
    }

    // ---------------------------------------------------------------------------------------------
    // Views longer than 64 code points: common::BlockPatternMatchVector and the multi-word functions.

    /** common::BlockPatternMatchVector: positions of each code point in the view, 64 per block. */
    static final class BlockPM {
        final int blockCount;
        final long[] extendedAscii; // [block * 256 + code point], code points below 256
        final HashMap<Long, Long> others = new HashMap<>(); // (block << 32 | code point) -> bits

        BlockPM(int[] s, int start, int end) {
            int len = end - start;
            blockCount = (len + 63) / 64;
            extendedAscii = new long[blockCount * 256];
            for (int i = 0; i < len; ++i) {
                int key = s[start + i];
                long mask = 1L << (i % 64);
                if (key >= 0 && key <= 255) {
                    extendedAscii[(i / 64) * 256 + key] |= mask;
                } else {
                    others.merge(((long) (i / 64) << 32) | key, mask, (a, b) -> a | b);
                }
            }
        }

        long get(long block, int key) {
            // DuckDB's search masks never reach past the last block with a bit set; guard anyway
            if (block < 0 || block >= blockCount) {
                return 0;
            }
            if (key >= 0 && key <= 255) {
                return extendedAscii[(int) block * 256 + key];
            }
            Long bits = others.get((block << 32) | key);
            return bits == null ? 0 : bits;
        }
    }

    /** flag_similar_characters_block: {P flags, T flags}. */
    static long[][] flagSimilarCharactersBlock(
            BlockPM pm, int pLen, int[] t, int tStart, int tLen, long bound) {
        int textWords = (tLen + 63) / 64;
        int patternWords = (pLen + 63) / 64;
        long[] tFlag = new long[textWords];
        long[] pFlag = new long[patternWords];

        long startRange = Math.min(bound + 1, pLen);
        long words = 1 + startRange / 64;
        long emptyWords = 0;
        long lastMask = (1L << (startRange % 64)) - 1;
        long firstMask = ~0L;

        for (int j = 0; j < tLen; ++j) {
            flagSimilarCharactersStep(pm, t[tStart + j], pFlag, tFlag, j, words, emptyWords, lastMask,
                    firstMask);

            if (j + bound + 1 < pLen) {
                lastMask = (lastMask << 1) | 1;
                if (j + bound + 2 < pLen && lastMask == ~0L) {
                    lastMask = 0;
                    words++;
                }
            }

            if (j >= bound) {
                firstMask <<= 1;
                if (firstMask == 0) {
                    firstMask = ~0L;
                    words--;
                    emptyWords++;
                }
            }
        }
        return new long[][] {pFlag, tFlag};
    }

    /** flag_similar_characters_step (the search bound mask passed by value, as in DuckDB). */
    static void flagSimilarCharactersStep(BlockPM pm, int tJ, long[] pFlag, long[] tFlag, long j,
            long words, long emptyWords, long lastMask, long firstMask) {
        int jWord = (int) (j / 64);
        int jPos = (int) (j % 64);
        long word = emptyWords;
        long lastWord = word + words;

        if (words == 1) {
            long pmJ = pm.get(word, tJ) & lastMask & firstMask & ~flagAt(pFlag, word);
            orAt(pFlag, word, pmJ & -pmJ);
            tFlag[jWord] |= (pmJ != 0 ? 1L : 0L) << jPos;
            return;
        }

        if (firstMask != 0) {
            long pmJ = pm.get(word, tJ) & firstMask & ~flagAt(pFlag, word);
            if (pmJ != 0) {
                orAt(pFlag, word, pmJ & -pmJ);
                tFlag[jWord] |= 1L << jPos;
                return;
            }
            word++;
        }

        for (; word < lastWord - 1; ++word) {
            long pmJ = pm.get(word, tJ) & ~flagAt(pFlag, word);
            if (pmJ != 0) {
                orAt(pFlag, word, pmJ & -pmJ);
                tFlag[jWord] |= 1L << jPos;
                return;
            }
        }

        if (lastMask != 0) {
            long pmJ = pm.get(word, tJ) & lastMask & ~flagAt(pFlag, word);
            orAt(pFlag, word, pmJ & -pmJ);
            tFlag[jWord] |= (pmJ != 0 ? 1L : 0L) << jPos;
        }
    }

    private static long flagAt(long[] flags, long word) {
        return word >= 0 && word < flags.length ? flags[(int) word] : 0;
    }

    private static void orAt(long[] flags, long word, long bits) {
        if (bits != 0) {
            flags[(int) word] |= bits;
        }
    }

    /** count_transpositions_block. */
    static long countTranspositionsBlock(BlockPM pm, int[] t, int tStart, long[] pFlags,
            long[] tFlags, long flaggedChars) {
        int textWord = 0;
        int patternWord = 0;
        int tOffset = tStart;
        long tFlag = tFlags[textWord];
        long pFlag = pFlags[patternWord];

        long transpositions = 0;
        while (flaggedChars != 0) {
            while (tFlag == 0) {
                textWord++;
                tOffset += 64;
                tFlag = tFlags[textWord];
            }

            while (tFlag != 0) {
                while (pFlag == 0) {
                    patternWord++;
                    pFlag = pFlags[patternWord];
                }

                long patternFlagMask = pFlag & -pFlag;
                if ((pm.get(patternWord, t[tOffset + Long.numberOfTrailingZeros(tFlag)])
                        & patternFlagMask) == 0) {
                    transpositions++;
                }

                tFlag &= tFlag - 1;
                pFlag ^= patternFlagMask;
                flaggedChars--;
            }
        }
        return transpositions;
    }
}
