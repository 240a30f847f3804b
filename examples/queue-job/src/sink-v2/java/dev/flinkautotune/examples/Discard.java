package dev.flinkautotune.examples;

import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/** The job's sink on Flink 1.18+ (Sink V2; SinkFunction is gone in 2.x). */
final class Discard {
    private Discard() {}

    static <T> DataStreamSink<T> into(DataStream<T> stream) {
        return stream.sinkTo(new DiscardingSink<>()).name("Sink");
    }
}
